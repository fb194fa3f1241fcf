//! Network-namespace test kit for LinuxFP.
//!
//! Every root test, benchmark and the demo build their topologies with this
//! crate: namespaces that exist exactly as long as their guard ([`Netns`],
//! removed on drop and while unwinding from a panic), veth pairs whose ends
//! never touch the host namespace ([`veth`]), the seed paper's
//! [`VirtualRouter`] testbed, a Flannel-like two-node cluster
//! ([`FlannelCluster`]), and bounded real traffic ([`ping`],
//! [`Iperf3`]). The API is synchronous; call it from plain threads or from
//! inside a tokio runtime alike.
//!
//! Tests that need root start with [`require_root`], which makes a skip
//! loud instead of silent:
//!
//! ```no_run
//! use linuxfp_testkit::{VirtualRouter, require_root};
//!
//! if !require_root("forwards_pings") {
//!     return;
//! }
//! let vr = VirtualRouter::new("fwd").unwrap();
//! assert!(vr.ping(false, 3).unwrap());
//! assert!(vr.ping(true, 3).unwrap());
//! ```
//!
//! Minimum kernel version: 6.6 (TCX queries in [`attached_programs`]); the
//! rest works on any kernel with network namespaces and veth.

#![deny(missing_docs)]

mod command;
pub mod diff;
mod error;
mod flannel;
mod links;
mod netns;
mod programs;
mod router;
mod switch;
mod traffic;

pub use command::{DEFAULT_TIMEOUT, Finished, NsChild};
pub use error::{Error, Result};
pub use flannel::{Backend, CLUSTER_CIDR, FlannelCluster, Node, Pod, PodPair, VXLAN_PORT};
pub use links::{
    LinkStats, addr, bridge, enslave, format_mac, ifindex, link_stats, mac, neighbour, parse_mac,
    route, sysctl, up, veth, wait_up,
};
pub use netns::{
    NAME_PREFIX, NETNS_DIR, Netns, is_stale, list as list_namespaces, owner_pid, remove_stale,
};
pub use programs::{Attached, attached_programs, attached_programs_here};
pub use router::{Endpoint, VirtualRouter};
pub use switch::{Host, Switch};
pub use traffic::{Iperf3, PingStats, Throughput, ping, wait_listening};

/// True if the process runs as root (effective UID 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// For the first line of a root test: returns true if running as root;
/// otherwise prints `SKIPPED <test>: needs root` to stderr and returns
/// false, so the skip is visible in the test output.
pub fn require_root(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("SKIPPED {test}: needs root");
    false
}
