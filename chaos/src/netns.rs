//! Network namespaces for a chaos run (issue 11 item 1; root only): every voter of the grid in
//! its own namespace, a host namespace for the runner's hosts, and a switch namespace holding
//! three bridges, so the host, grid and heartbeat networks can be broken apart. Nothing is
//! added to the machine's own namespace; everything goes when [`Netns`] drops.
//!
//! ```text
//!   vtg<run>-sw   br-h 10.250.0.0/24 (hosts)   br-g 10.251.0.0/24 (grid)   br-b 10.252.0.0/24 (heartbeat)
//!   vtg<run>-<v>  eh 10.250.0.<10+v>   eg 10.251.0.<10+v>   eb 10.252.0.<10+v>
//!   vtg<run>-h    eh 10.250.0.2        (the runner's hosts and admin calls)
//! ```
//!
//! A path cut is a blackhole route inside a voter's namespace (both ends for a cut both ways,
//! the sender's for a one-way cut), an isolated voter has its grid and heartbeat links down; a
//! heal removes every route and brings every link up.

use std::fs::File;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("`ip {args}` failed: {why}")]
    Ip { args: String, why: String },
    #[error("entering the host namespace: {0}")]
    Enter(String),
}

/// Which of a voter's three networks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    Host,
    Grid,
    Heartbeat,
}

impl Net {
    const ALL: [Net; 3] = [Net::Host, Net::Grid, Net::Heartbeat];
    fn letter(self) -> char {
        match self {
            Net::Host => 'h',
            Net::Grid => 'g',
            Net::Heartbeat => 'b',
        }
    }
    fn octet(self) -> u8 {
        match self {
            Net::Host => 250,
            Net::Grid => 251,
            Net::Heartbeat => 252,
        }
    }
}

fn ip(args: &[&str]) -> Result<(), NetnsError> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| NetnsError::Ip {
            args: args.join(" "),
            why: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetnsError::Ip {
            args: args.join(" "),
            why: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// The namespaces of one run.
pub struct Netns {
    prefix: String,
    voters: Vec<u8>,
    /// Blackhole routes in place: (in namespace of, to address).
    routes: Mutex<Vec<(u8, Ipv4Addr)>>,
    /// Namespaces created so far (deleted on drop, in reverse).
    created: Mutex<Vec<String>>,
}

impl Netns {
    /// Can this process make namespaces (root, `ip` present)?
    pub fn available() -> bool {
        nix::unistd::geteuid().is_root()
            && Command::new("ip")
                .arg("-V")
                .output()
                .is_ok_and(|o| o.status.success())
    }

    /// The address of voter `v` on `net`.
    pub fn addr(v: u8, net: Net) -> Ipv4Addr {
        Ipv4Addr::new(10, net.octet(), 0, 10 + v)
    }

    pub fn ns(&self, v: u8) -> String {
        format!("{}-{v}", self.prefix)
    }

    fn host_ns(&self) -> String {
        format!("{}-h", self.prefix)
    }

    fn add_ns(&self, name: &str) -> Result<(), NetnsError> {
        ip(&["netns", "add", name])?;
        self.created
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_string());
        ip(&["-n", name, "link", "set", "lo", "up"])
    }

    /// Create the namespaces for `voters`, named after `run` (a few characters).
    pub fn create(run: &str, voters: &[u8]) -> Result<Netns, NetnsError> {
        let n = Netns {
            prefix: format!("vtg{run}"),
            voters: voters.to_vec(),
            routes: Mutex::new(Vec::new()),
            created: Mutex::new(Vec::new()),
        };
        let sw = format!("{}-sw", n.prefix);
        n.add_ns(&sw)?;
        for net in Net::ALL {
            let br = format!("br-{}", net.letter());
            ip(&["-n", &sw, "link", "add", &br, "type", "bridge"])?;
            ip(&["-n", &sw, "link", "set", &br, "up"])?;
        }
        let attach = |ns: &str, tag: &str, net: Net, addr: Ipv4Addr| -> Result<(), NetnsError> {
            let outer = format!("{tag}{}", net.letter());
            let inner = format!("e{}", net.letter());
            ip(&[
                "-n", &sw, "link", "add", &outer, "type", "veth", "peer", "name", &inner, "netns",
                ns,
            ])?;
            ip(&[
                "-n",
                &sw,
                "link",
                "set",
                &outer,
                "master",
                &format!("br-{}", net.letter()),
            ])?;
            ip(&["-n", &sw, "link", "set", &outer, "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                &inner,
            ])?;
            ip(&["-n", ns, "link", "set", &inner, "up"])
        };
        for &v in voters {
            let ns = n.ns(v);
            n.add_ns(&ns)?;
            for net in Net::ALL {
                attach(&ns, &format!("v{v}"), net, Netns::addr(v, net))?;
            }
        }
        let host = n.host_ns();
        n.add_ns(&host)?;
        attach(&host, "hst", Net::Host, Ipv4Addr::new(10, 250, 0, 2))?;
        Ok(n)
    }

    /// Move the calling thread into the host namespace: sockets it (and threads it starts
    /// afterwards) opens reach the voters' host addresses. Call before building the runtime.
    pub fn enter_host(&self) -> Result<(), NetnsError> {
        let path = format!("/run/netns/{}", self.host_ns());
        let f = File::open(&path).map_err(|e| NetnsError::Enter(format!("{path}: {e}")))?;
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetnsError::Enter(e.to_string()))
    }

    /// `ip netns exec` prefix for a process of voter `v`.
    pub fn exec_prefix(&self, v: u8) -> Vec<String> {
        vec!["netns".into(), "exec".into(), self.ns(v)]
    }

    fn blackhole(&self, from: u8, to: Ipv4Addr) -> Result<(), NetnsError> {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        if routes.contains(&(from, to)) {
            return Ok(());
        }
        ip(&[
            "-n",
            &self.ns(from),
            "route",
            "add",
            "blackhole",
            &format!("{to}/32"),
        ])?;
        routes.push((from, to));
        Ok(())
    }

    /// Cut `net` between `a` and `b`, both ways, or from `a` to `b` only.
    pub fn cut(&self, a: u8, b: u8, net: Net, both_ways: bool) -> Result<(), NetnsError> {
        self.blackhole(a, Netns::addr(b, net))?;
        if both_ways {
            self.blackhole(b, Netns::addr(a, net))?;
        }
        Ok(())
    }

    fn set_link(&self, v: u8, net: Net, state: &str) -> Result<(), NetnsError> {
        let dev = format!("e{}", net.letter());
        ip(&["-n", &self.ns(v), "link", "set", &dev, state])
    }

    /// Cut `v` from every other voter, grid and heartbeat (its hosts still reach it).
    pub fn isolate(&self, v: u8) -> Result<(), NetnsError> {
        for net in [Net::Grid, Net::Heartbeat] {
            self.set_link(v, net, "down")?;
        }
        Ok(())
    }

    /// Every route removed, every link up.
    pub fn heal(&self) -> Result<(), NetnsError> {
        let routes: Vec<(u8, Ipv4Addr)> =
            std::mem::take(&mut *self.routes.lock().unwrap_or_else(|p| p.into_inner()));
        for (from, to) in routes {
            ip(&[
                "-n",
                &self.ns(from),
                "route",
                "del",
                "blackhole",
                &format!("{to}/32"),
            ])?;
        }
        for &v in &self.voters {
            for net in Net::ALL {
                self.set_link(v, net, "up")?;
            }
        }
        Ok(())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let created = std::mem::take(&mut *self.created.lock().unwrap_or_else(|p| p.into_inner()));
        for ns in created.iter().rev() {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_per_network_and_voter() {
        assert_eq!(Netns::addr(0, Net::Host), Ipv4Addr::new(10, 250, 0, 10));
        assert_eq!(
            Netns::addr(8, Net::Heartbeat),
            Ipv4Addr::new(10, 252, 0, 18)
        );
    }

    /// Run `f` on a thread inside namespace `ns`.
    fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            let file = File::open(&path).unwrap();
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        })
        .join()
        .unwrap()
    }

    /// As root: two voters' namespaces reach each other over TCP on the grid network until a
    /// cut, one way or both, and again after the heal; isolation leaves the host network;
    /// everything is gone after the drop. Skipped (with a note) without root.
    #[test]
    fn cuts_isolation_and_heal_in_real_namespaces() {
        use std::net::{SocketAddr, TcpListener, TcpStream};
        use std::time::Duration;
        if !Netns::available() {
            eprintln!("skipped: network namespaces need root and `ip`");
            return;
        }
        let run = format!("t{}", std::process::id() % 100_000);
        let n = Netns::create(&run, &[0, 1]).unwrap();
        // Listeners inside each namespace on every network, port 7000, accepting forever.
        for v in [0u8, 1] {
            for net in Net::ALL {
                let addr = SocketAddr::from((Netns::addr(v, net), 7000));
                let l = in_ns(&n.ns(v), move || TcpListener::bind(addr).unwrap());
                std::thread::spawn(move || for _ in l.incoming() {});
            }
        }
        let reach = |from: u8, to: u8, net: Net| {
            let addr = SocketAddr::from((Netns::addr(to, net), 7000));
            in_ns(&n.ns(from), move || {
                TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
            })
        };
        assert!(reach(0, 1, Net::Grid) && reach(1, 0, Net::Grid));
        n.cut(0, 1, Net::Grid, false).unwrap();
        assert!(!reach(0, 1, Net::Grid), "0 -> 1 cut");
        assert!(
            reach(0, 1, Net::Heartbeat),
            "the heartbeat network is its own"
        );
        n.cut(0, 1, Net::Grid, true).unwrap();
        assert!(!reach(1, 0, Net::Grid));
        n.heal().unwrap();
        assert!(reach(0, 1, Net::Grid) && reach(1, 0, Net::Grid));
        n.isolate(1).unwrap();
        assert!(!reach(0, 1, Net::Grid) && !reach(0, 1, Net::Heartbeat));
        assert!(reach(0, 1, Net::Host), "its hosts still reach it");
        n.heal().unwrap();
        let names = [n.ns(0), n.ns(1)];
        drop(n);
        let list = String::from_utf8(
            Command::new("ip")
                .args(["netns", "list"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        for name in names {
            assert!(!list.contains(&name), "{name} left behind: {list}");
        }
    }
}
