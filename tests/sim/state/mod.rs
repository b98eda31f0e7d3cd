//! Grid state as a cluster sees it: links, flags and the seed's messages (DESIGN §7).

mod b64_grid_links_degraded;
mod b7_b60_b65_one_link_of_two;
