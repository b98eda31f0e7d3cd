//! Issue 13 in the simulation: who may call the grid network. The simulated network's addressing
//! proves a sender here, as a certificate does between real processes (`vtgrid_sim::net::SimPeer`).

mod grid_port_senders;
