//! turmoil simulations: clusters as simulated hosts on memory storage, fixed seeds.
//! Each topic is a directory; each test names the behaviour it checks (B-number).

mod copies;
mod durability;
mod host;
mod ownership;
mod partitions;
mod random;
mod scenarios;
mod security;
mod state;
mod takeover;
