//! Several authorities' nodes relaying to each other, in process: every upload a phone
//! makes to its home node is gossiped, as the node's federation gossips it (the
//! `proto::federated` frame of the stored upload), to the node's peers, arrives there
//! `relay_seconds` later, passes their federation intake ([`Server::take_relayed`]) and is
//! forwarded on by each node that newly stores it. Each node publishes what it holds in its
//! own signed batches, on its own boundaries and release spread, and its phones sync from
//! it alone, so a report's path through federation is in every delay the run measures.
//!
//! The town is split into as many contiguous districts as there are nodes (agents are
//! numbered household by household, so a household never straddles two).

use std::collections::BTreeMap;

use ephemera_proto::UnixTime;
use ephemera_proto::upload::UploadId;

use super::error::SimError;
use super::scenario::{Scenario, Topology};
use super::server::{Server, UploadRecord};

/// The run's nodes and the gossip between them.
pub struct Federation {
    nodes: Vec<Server>,
    topology: Topology,
    relay_seconds: u64,
    agents: u32,
    /// Relays under way: (arrival, sequence) → (from, to, upload id).
    in_flight: BTreeMap<(UnixTime, u64), (u32, u32, UploadId)>,
    sent: u64,
    /// Relayed uploads newly stored, per receiving node.
    pub relayed_in: Vec<u64>,
    /// Every accepted upload, whichever node it was made to.
    pub uploads: Vec<UploadRecord>,
}

impl std::fmt::Debug for Federation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Federation")
            .field("nodes", &self.nodes)
            .field("topology", &self.topology)
            .field("in_flight", &self.in_flight.len())
            .finish_non_exhaustive()
    }
}

impl Federation {
    /// The scenario's nodes (`[node] nodes`), each trusting the others' authorities.
    pub fn new(scenario: &Scenario) -> Federation {
        let count = scenario.node.nodes.max(1);
        let authorities: Vec<_> = (0..count)
            .map(|k| Server::authority_key(scenario.seed, k))
            .collect();
        let nodes = (0..count)
            .map(|k| {
                let peers = authorities
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j as u32 != k)
                    .map(|(_, key)| *key)
                    .collect();
                Server::new(
                    scenario.seed,
                    k,
                    peers,
                    scenario.scheme.kind(),
                    u64::from(scenario.node.batch_hours) * 3600,
                    scenario.node.min_batch_entries,
                )
            })
            .collect();
        Federation {
            nodes,
            topology: scenario.node.topology,
            relay_seconds: u64::from(scenario.node.relay_seconds),
            agents: scenario.agents,
            in_flight: BTreeMap::new(),
            sent: 0,
            relayed_in: vec![0; count as usize],
            uploads: Vec::new(),
        }
    }

    /// The nodes.
    pub fn nodes(&self) -> &[Server] {
        &self.nodes
    }

    /// The first node: the only one of a run without federation.
    pub fn first(&self) -> &Server {
        &self.nodes[0]
    }

    /// The node whose district `agent` lives in.
    pub fn home_of(&self, agent: u32) -> u32 {
        (u64::from(agent) * self.nodes.len() as u64 / u64::from(self.agents.max(1))) as u32
    }

    /// Hops between `agent`'s home node and `other`'s.
    pub fn hops(&self, agent: u32, other: u32) -> u32 {
        self.topology.hops(self.home_of(agent), self.home_of(other))
    }

    /// `agent`'s home node.
    pub fn home(&self, agent: u32) -> &Server {
        &self.nodes[self.home_of(agent) as usize]
    }

    /// `agent`'s home node, to report through.
    pub fn home_mut(&mut self, agent: u32) -> &mut Server {
        let k = self.home_of(agent);
        &mut self.nodes[k as usize]
    }

    /// Gossips what node `from` accepted from its phones (or newly stored from a peer, but
    /// `except` that peer) to its peers.
    fn gossip(&mut self, from: u32, ids: Vec<UploadId>, except: Option<u32>, now: UnixTime) {
        let arrival = UnixTime(now.0 + self.relay_seconds);
        for id in ids {
            for to in 0..self.nodes.len() as u32 {
                if self.topology.linked(from, to) && Some(to) != except {
                    self.sent += 1;
                    self.in_flight.insert((arrival, self.sent), (from, to, id));
                }
            }
        }
    }

    /// Runs the federation up to `now`: gossips the phones' new uploads, delivers every
    /// relay due by then (forwarding what a node newly stores), and lets every node cut
    /// the boundary due and purge.
    ///
    /// # Errors
    /// [`SimError::Node`] if a node refuses a peer's relay or cannot cut.
    pub fn advance(&mut self, now: UnixTime) -> Result<(), SimError> {
        for k in 0..self.nodes.len() as u32 {
            let accepted = self.nodes[k as usize].take_accepted();
            self.gossip(k, accepted, None, now);
        }
        while let Some(entry) = self.in_flight.first_entry() {
            let at = entry.key().0;
            if at > now {
                break;
            }
            let (from, to, id) = entry.remove();
            let Some(frame) = self.nodes[from as usize].relay_frame(&id)? else {
                continue;
            };
            if let Some(stored) = self.nodes[to as usize].take_relayed(&frame, at)? {
                self.relayed_in[to as usize] += 1;
                self.gossip(to, vec![stored], Some(from), at);
            }
        }
        for node in &mut self.nodes {
            node.cut_due(now)?;
        }
        Ok(())
    }
}
