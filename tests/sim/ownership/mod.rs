//! Ownership across clusters: the handshake, unreachable owners, local autonomy (DESIGN §3).

mod b11_transfer_and_b14_b15_partition;
