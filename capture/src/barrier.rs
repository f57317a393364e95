//! The global cut of a job whose processes run under several agents (a coordinated job on
//! several nodes): the capture stops at three points while the tree is frozen, and the
//! [`CutBarrier`] (the agent's coordinator connection) returns only when every agent of the
//! job reached the same point. Between the points the driver drains the job's connections
//! to the other agents, then captures; the tree runs again only after the last point.

use cairn_kinds::inet::cut::TcpEnd;

/// What the capture waits for at each step of a global cut. An `Err` abandons the
/// checkpoint (the tree runs again, unharmed); its text says why (another agent failed, the
/// coordinator went away, ...).
pub trait CutBarrier {
    /// The tree is frozen and holds the connected TCP sockets `ends`; returns once every
    /// agent is frozen, with the ends the other agents hold.
    fn frozen(&mut self, ends: &[TcpEnd]) -> Result<Vec<TcpEnd>, String>;
    /// This agent's connections to the other agents have delivered all they hold; returns
    /// once every agent's have.
    fn drained(&mut self) -> Result<(), String>;
    /// The image is captured; returns once every agent's is (then the tree runs again).
    fn captured(&mut self) -> Result<(), String>;
}

/// How long the connections to other agents may take to deliver their data once every
/// agent is frozen (acknowledgements still under way).
pub const DRAIN_WITHIN: std::time::Duration = std::time::Duration::from_secs(3);
