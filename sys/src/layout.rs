//! The order in which a restore recreates the processes of a job so that each gets back its
//! parent, its session and its process group — any layout `fork`, `setsid` and `setpgid`
//! can produce, including sessions and groups whose leader has exited and processes adopted
//! by the job's init.
//!
//! The kernel gives a new process its creator's session and group; `setsid` makes a new
//! session (once, by a process that does not lead a group), `setpgid` moves a process to a
//! group of its own session that exists at that moment. So the layout is rebuilt as one
//! sequence of steps ([`Layout::steps`]), each done by one process:
//!
//! 1. Every process is forked by its parent while the parent is in the session the child must
//!    be born in (a parent that leads a session forks the children of its earlier session
//!    before its own `setsid`); a process adopted by the init is forked with `CLONE_PARENT`
//!    by a child of the init that is in that session — when none is (the session's leader
//!    has exited), by a helper that takes the session id as its pid and calls `setsid`.
//! 2. Each group is created by the process whose pid is its id (`setpgid(0, 0)`), or — its
//!    leader has exited — by a helper with that pid, a child of the init in the group's
//!    session; then every process joins its group, the creators that have left their group
//!    last.
//! 3. Zombies exit with their status (they keep their group, as a zombie does); helpers exit
//!    and are reaped by the init.
//!
//! [`Layout::plan`] simulates every step against the kernel's rules, so a layout it returns
//! can be rebuilt, and one it refuses is refused before anything is started.

use std::collections::HashMap;

/// One process of the job: pids inside the job's PID namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Its pid.
    pub pid: i32,
    /// Its parent (1: the job's init).
    pub ppid: i32,
    /// Its session (0: the init's session, outside the namespace).
    pub sid: i32,
    /// Its process group (0: the init's group).
    pub pgid: i32,
    /// For a zombie, its raw wait status; None for a live process.
    pub zombie: Option<i32>,
}

/// What a node of the layout is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The member of that index.
    Member(usize),
    /// A helper that holds a pid (as session or group id, or to fork the init's children)
    /// while the layout is built, and exits at the end.
    Helper,
}

/// A step, done by one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Fork node `child` with its pid (`clone3` with `set_tid`); with `CLONE_PARENT` when
    /// `clone_parent` (the new process is then a child of the init).
    Fork {
        /// Index of the new node.
        child: usize,
        /// Whether it is forked with `CLONE_PARENT`.
        clone_parent: bool,
        /// No exit signal (a helper its creator reaps itself, unseen by the program).
        quiet: bool,
    },
    /// Reap the helper with this pid (a child of this node) once it has exited.
    Reap(i32),
    /// `setsid()`.
    Setsid,
    /// `setpgid(0, pgid)` (the own pid: create the group).
    Setpgid(i32),
    /// End with this raw wait status (zombies; 0 for helpers).
    Exit(i32),
}

/// A process of the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    /// Its pid inside the namespace.
    pub pid: i32,
    /// What it is.
    pub role: Role,
}

/// The plan: node 0 is created by the init; then `steps` in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The processes, members and helpers.
    pub nodes: Vec<Node>,
    /// (node, step), in the order they must happen.
    pub steps: Vec<(usize, Op)>,
}

#[derive(Clone, Copy)]
struct Sim {
    session: i32,
    group: i32,
    init_child: bool,
    /// Exited (a helper that made the init adopt an orphan).
    gone: bool,
}

struct Planner<'a> {
    members: &'a [Member],
    nodes: Vec<Node>,
    sim: Vec<Sim>,
    steps: Vec<(usize, Op)>,
    of_member: Vec<Option<usize>>,
    setsid_done: Vec<bool>,
    births: HashMap<i32, Option<i32>>,
    /// The next pid no process, session or group of the job uses.
    free: i32,
    /// Helpers a process of the job forked itself: (creator, helper), reaped at the end.
    reaped: Vec<(usize, usize)>,
}

impl Planner<'_> {
    fn describe(&self, i: usize) -> String {
        let m = &self.members[i];
        format!(
            "{} {} (parent {}, session {}, group {})",
            if m.zombie.is_some() {
                "zombie"
            } else {
                "process"
            },
            m.pid,
            m.ppid,
            m.sid,
            m.pgid
        )
    }

    /// The session member `i` must be born in (None: any).
    fn birth(&mut self, i: usize, depth: usize) -> Option<i32> {
        let m = self.members[i];
        if m.sid != m.pid {
            return Some(m.sid);
        }
        if let Some(b) = self.births.get(&m.pid) {
            return *b;
        }
        let mut found = None;
        if depth < 4096 {
            for c in 0..self.members.len() {
                if self.members[c].ppid == m.pid && c != i {
                    if let Some(b) = self.birth(c, depth + 1) {
                        if b != m.pid {
                            found = Some(b);
                            break;
                        }
                    }
                }
            }
        }
        self.births.insert(m.pid, found);
        found
    }

    fn add(&mut self, pid: i32, role: Role, creator: usize, clone_parent: bool) -> usize {
        self.add_with(pid, role, creator, clone_parent, false)
    }

    fn add_with(
        &mut self,
        pid: i32,
        role: Role,
        creator: usize,
        clone_parent: bool,
        quiet: bool,
    ) -> usize {
        let n = self.nodes.len();
        self.nodes.push(Node { pid, role });
        let c = self.sim[creator];
        self.sim.push(Sim {
            session: c.session,
            group: c.group,
            init_child: if clone_parent { c.init_child } else { false },
            gone: false,
        });
        self.setsid_done.push(false);
        self.steps.push((
            creator,
            Op::Fork {
                child: n,
                clone_parent,
                quiet,
            },
        ));
        if let Role::Member(i) = role {
            self.of_member[i] = Some(n);
        }
        n
    }

    fn node_of_pid(&self, pid: i32) -> Option<usize> {
        self.nodes.iter().position(|n| n.pid == pid)
    }

    /// A child of the init, in `session` (any when None).
    fn anchor(&self, session: Option<i32>) -> Option<usize> {
        (0..self.nodes.len()).find(|&n| {
            !self.sim[n].gone
                && self.sim[n].init_child
                && session.is_none_or(|s| self.sim[n].session == s)
        })
    }

    /// Any process in `session` that can fork a helper and reap it: a member (a zombie
    /// only when `zombies`: it exits before the helpers reaped at the end) or a helper that
    /// is not reaped itself.
    fn any_in(&self, session: i32, zombies: bool) -> Option<usize> {
        (0..self.nodes.len()).find(|&n| {
            !self.sim[n].gone
                && self.sim[n].session == session
                && match self.nodes[n].role {
                    Role::Member(i) => zombies || self.members[i].zombie.is_none(),
                    Role::Helper => !self.reaped.iter().any(|r| r.1 == n),
                }
        })
    }

    fn next_free(&mut self) -> i32 {
        self.free += 1;
        self.free - 1
    }

    fn setsid(&mut self, n: usize) -> Result<(), String> {
        let pid = self.nodes[n].pid;
        if self.sim.iter().any(|s| !s.gone && s.group == pid) {
            return Err(format!(
                "session {pid} cannot be created: a group {pid} exists"
            ));
        }
        self.steps.push((n, Op::Setsid));
        self.sim[n].session = pid;
        self.sim[n].group = pid;
        self.setsid_done[n] = true;
        Ok(())
    }

    /// One pass creating every member that can be created now; true when one was.
    fn create_pass(&mut self) -> Result<bool, String> {
        let mut progress = false;
        for i in 0..self.members.len() {
            if self.of_member[i].is_some() {
                continue;
            }
            let m = self.members[i];
            let want = self.birth(i, 0);
            let creator = if m.ppid != 1 {
                let Some(q) = self.node_of_pid(m.ppid) else {
                    continue;
                };
                want.is_none_or(|s| self.sim[q].session == s)
                    .then_some((q, false))
            } else {
                match self.anchor(want) {
                    Some(a) => Some((a, true)),
                    None => match want {
                        // The session's leader has exited: a helper with its id leads it.
                        Some(s) if s != 0 && !self.members.iter().any(|o| o.pid == s) => {
                            let h = self.add(s, Role::Helper, 0, true);
                            self.setsid(h)?;
                            Some((h, true))
                        }
                        // No child of the init is in the session: a process of the session
                        // forks a helper that forks the orphan and exits, so that the init
                        // adopts it (as the orphan was adopted in the first place).
                        Some(s) => match self.any_in(s, true) {
                            Some(c) => {
                                let pid = self.next_free();
                                let t = self.add_with(pid, Role::Helper, c, false, true);
                                let o = self.add(m.pid, Role::Member(i), t, false);
                                self.steps.push((t, Op::Exit(0)));
                                self.steps.push((c, Op::Reap(pid)));
                                self.reaped.push((c, t));
                                self.sim[t].gone = true;
                                self.sim[o].init_child = true;
                                progress = true;
                                None
                            }
                            None => None,
                        },
                        None => None,
                    },
                }
            };
            if let Some((c, cp)) = creator {
                self.add(m.pid, Role::Member(i), c, cp);
                progress = true;
            }
        }
        Ok(progress)
    }

    fn group_exists(&self, g: i32, session: i32) -> bool {
        self.sim
            .iter()
            .any(|s| !s.gone && s.group == g && s.session == session)
    }

    fn join(&mut self, n: usize, g: i32, i: usize) -> Result<(), String> {
        let me = self.sim[n];
        if me.session == self.nodes[n].pid {
            return Err(format!(
                "{}: a session leader cannot change its group",
                self.describe(i)
            ));
        }
        if g != self.nodes[n].pid && !self.group_exists(g, me.session) {
            return Err(format!(
                "{}: group {g} does not exist in session {} when it must join it",
                self.describe(i),
                me.session
            ));
        }
        self.steps.push((n, Op::Setpgid(g)));
        self.sim[n].group = if g == 0 { self.nodes[n].pid } else { g };
        Ok(())
    }

    fn groups(&mut self) -> Result<(), String> {
        // The creators of the groups members must join.
        let mut creators: Vec<usize> = Vec::new();
        for i in 0..self.members.len() {
            let m = self.members[i];
            let n = self.of_member[i].ok_or("member not created")?;
            let g = m.pgid;
            if self.sim[n].group == g || creators.iter().any(|&k| self.nodes[k].pid == g) {
                continue;
            }
            if g == 0 {
                return Err(format!(
                    "{}: it is in the group of the job's init, but not born in it",
                    self.describe(i)
                ));
            }
            let session = self.sim[n].session;
            if self.group_exists(g, session) {
                continue;
            }
            match self.node_of_pid(g) {
                Some(k) => {
                    if self.sim[k].session != session {
                        return Err(format!(
                            "{}: group {g} belongs to another session than process {g}'s",
                            self.describe(i)
                        ));
                    }
                    let ki = match self.nodes[k].role {
                        Role::Member(ki) => ki,
                        Role::Helper => i,
                    };
                    self.join(k, g, ki)?;
                    creators.push(k);
                }
                None => {
                    let h = if let Some(a) = self.anchor(Some(session)) {
                        self.add(g, Role::Helper, a, true)
                    } else if let Some(c) = self.any_in(session, false) {
                        // Forked by a process of the session, which reaps it at the end.
                        let h = self.add_with(g, Role::Helper, c, false, true);
                        self.reaped.push((c, h));
                        h
                    } else {
                        return Err(format!(
                            "{}: its group's leader has exited and no process can hold the \
                             group's id in session {session}",
                            self.describe(i)
                        ));
                    };
                    self.join(h, g, i)?;
                }
            }
        }
        // Everyone else joins, then the creators that have left their own group.
        for pass in 0..2 {
            for i in 0..self.members.len() {
                let n = self.of_member[i].ok_or("member not created")?;
                let g = self.members[i].pgid;
                if self.sim[n].group == g || (pass == 0) == creators.contains(&n) {
                    continue;
                }
                self.join(n, g, i)?;
            }
        }
        Ok(())
    }
}

impl Layout {
    /// Plan the rebuild of `members` (live processes and zombies; a process's parent before
    /// it). With `first_is_launched`, member 0 is the launched program, created by the init;
    /// otherwise a helper is. Refuses (with the process and why) a layout it cannot rebuild.
    pub fn plan(members: &[Member], first_is_launched: bool) -> Result<Layout, String> {
        for (i, m) in members.iter().enumerate() {
            if members[..i].iter().any(|o| o.pid == m.pid) || m.pid <= 1 {
                return Err(format!("pid {} appears twice or is invalid", m.pid));
            }
            if m.ppid == 1 {
                if m.zombie.is_some() {
                    return Err(format!("zombie {} is a child of the job's init", m.pid));
                }
            } else if !members
                .iter()
                .any(|o| o.pid == m.ppid && o.zombie.is_none())
            {
                return Err(format!(
                    "process {} has parent {}, which is not a live process of the job",
                    m.pid, m.ppid
                ));
            }
        }
        let free = members
            .iter()
            .flat_map(|m| [m.pid, m.sid, m.pgid])
            .max()
            .unwrap_or(1)
            + 1;
        let mut p = Planner {
            members,
            nodes: Vec::new(),
            sim: vec![Sim {
                session: 0,
                group: 0,
                init_child: true,
                gone: false,
            }],
            steps: Vec::new(),
            of_member: vec![None; members.len()],
            setsid_done: vec![false],
            births: HashMap::new(),
            free: free + 1,
            reaped: Vec::new(),
        };
        match members.first() {
            Some(m) if first_is_launched => {
                if m.ppid != 1 || m.zombie.is_some() {
                    return Err(format!(
                        "the launched program {} is not a live child of the job's init",
                        m.pid
                    ));
                }
                p.nodes.push(Node {
                    pid: m.pid,
                    role: Role::Member(0),
                });
                p.of_member[0] = Some(0);
            }
            _ => p.nodes.push(Node {
                pid: free,
                role: Role::Helper,
            }),
        }
        loop {
            while p.create_pass()? {}
            let pending: Vec<usize> = (0..p.nodes.len())
                .filter(|&n| {
                    !p.setsid_done[n]
                        && matches!(p.nodes[n].role, Role::Member(i)
                            if members[i].sid == members[i].pid)
                })
                .collect();
            if pending.is_empty() {
                break;
            }
            for n in pending {
                let Role::Member(i) = p.nodes[n].role else {
                    continue;
                };
                p.setsid(n).map_err(|e| format!("{}: {e}", p.describe(i)))?;
            }
        }
        if let Some(i) = p.of_member.iter().position(Option::is_none) {
            return Err(format!(
                "{}: no process can create it in its session",
                p.describe(i)
            ));
        }
        p.groups()?;
        for (i, &m) in members.iter().enumerate() {
            let n = p.of_member[i].ok_or("member not created")?;
            let s = p.sim[n];
            if s.session != m.sid || s.group != m.pgid || s.init_child != (m.ppid == 1) {
                return Err(format!("{}: cannot be rebuilt", p.describe(i)));
            }
        }
        for n in 0..p.nodes.len() {
            match p.nodes[n].role {
                Role::Member(i) => {
                    if let Some(st) = members[i].zombie {
                        p.steps.push((n, Op::Exit(st)));
                    }
                }
                Role::Helper if !p.reaped.iter().any(|r| r.1 == n) => {
                    p.steps.push((n, Op::Exit(0)))
                }
                Role::Helper => {}
            }
        }
        // Helpers forked by a process of the job: they exit, their creator reaps them.
        for &(c, h) in &p.reaped {
            if !p.sim[h].gone {
                p.steps.push((h, Op::Exit(0)));
                p.steps.push((c, Op::Reap(p.nodes[h].pid)));
            }
        }
        Ok(Layout {
            nodes: p.nodes,
            steps: p.steps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(pid: i32, ppid: i32, sid: i32, pgid: i32) -> Member {
        Member {
            pid,
            ppid,
            sid,
            pgid,
            zombie: None,
        }
    }

    fn helpers(l: &Layout) -> Vec<i32> {
        l.nodes
            .iter()
            .filter(|n| n.role == Role::Helper)
            .map(|n| n.pid)
            .collect()
    }

    #[test]
    fn a_plain_tree_needs_no_helper() {
        let m = [live(2, 1, 0, 0), live(3, 2, 0, 0), live(4, 3, 4, 4)];
        let l = Layout::plan(&m, true).unwrap();
        assert!(helpers(&l).is_empty());
        assert_eq!(l.nodes[0].pid, 2);
    }

    #[test]
    fn a_daemon_whose_session_leader_exited() {
        // The launched program (2) exited; its child 3 called setsid and forked 4, then exited.
        let m = [live(4, 1, 3, 3)];
        let l = Layout::plan(&m, false).unwrap();
        let h = helpers(&l);
        assert!(h.contains(&3), "{l:?}");
        assert_eq!(l.nodes[0].role, Role::Helper);
    }

    #[test]
    fn a_group_whose_leader_exited() {
        let m = [live(2, 1, 0, 0), live(4, 2, 0, 3), live(5, 2, 0, 3)];
        let l = Layout::plan(&m, true).unwrap();
        assert_eq!(helpers(&l), vec![3]);
    }

    #[test]
    fn a_child_kept_in_the_session_its_parent_left() {
        // 3 forked 4, then called setsid.
        let m = [live(2, 1, 0, 0), live(3, 2, 3, 3), live(4, 3, 0, 0)];
        let l = Layout::plan(&m, true).unwrap();
        let fork4 = l
            .steps
            .iter()
            .position(|s| matches!(s.1, Op::Fork { child, .. } if l.nodes[child].pid == 4))
            .unwrap();
        let setsid3 = l
            .steps
            .iter()
            .position(|s| s.1 == Op::Setsid && l.nodes[s.0].pid == 3)
            .unwrap();
        assert!(fork4 < setsid3);
    }

    #[test]
    fn a_zombie_keeps_its_group() {
        let m = [
            live(2, 1, 0, 0),
            Member {
                pid: 3,
                ppid: 2,
                sid: 0,
                pgid: 3,
                zombie: Some(7 << 8),
            },
            live(4, 2, 0, 3),
        ];
        let l = Layout::plan(&m, true).unwrap();
        assert!(helpers(&l).is_empty());
        assert_eq!(l.steps.last().unwrap().1, Op::Exit(7 << 8));
    }

    #[test]
    fn an_orphan_in_the_session_of_a_leader_that_is_not_a_child_of_init() {
        // pid 3 (child of 2) leads its own session (sid 3); 5, forked by an exited child of 3, was adopted.
        let m = [live(2, 1, 0, 0), live(3, 2, 3, 3), live(5, 1, 3, 3)];
        let l = Layout::plan(&m, true).unwrap();
        assert!(l.steps.iter().any(|s| matches!(s.1, Op::Reap(_))), "{l:?}");
    }

    #[test]
    fn a_dead_group_leader_in_a_session_without_a_child_of_init() {
        // pid 3 (child of 2) leads its own session (sid 3); group 4 (leader exited) holds 5, a child of 3.
        let m = [live(2, 1, 0, 0), live(3, 2, 3, 3), live(5, 3, 3, 4)];
        let l = Layout::plan(&m, true).unwrap();
        assert_eq!(helpers(&l), vec![4]);
        assert_eq!(l.steps.last().unwrap().1, Op::Reap(4));
    }

    #[test]
    fn an_orphan_whose_session_leader_is_a_zombie() {
        // pid 3 led its own session (sid 3) and exited unreaped; 5, forked by an exited child of 3, was adopted.
        let m = [
            live(2, 1, 0, 0),
            live(5, 1, 3, 3),
            Member {
                pid: 3,
                ppid: 2,
                sid: 3,
                pgid: 3,
                zombie: Some(0),
            },
        ];
        Layout::plan(&m, true).unwrap();
    }

    #[test]
    fn an_impossible_layout_is_refused() {
        // A child in a session its parent was never in.
        let m = [
            live(2, 1, 0, 0),
            live(3, 2, 0, 0),
            live(4, 3, 9, 9),
            live(5, 3, 9, 9),
        ];
        assert!(Layout::plan(&m, true).is_err());
    }
}
