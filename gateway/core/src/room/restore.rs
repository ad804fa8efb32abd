//! Building a room from what the runtime kept while its memory was gone:
//! the only constructor. Every deadline comes from kept facts, never from
//! the moment of the wake.

use super::*;

/// A socket the runtime kept while the room's memory was gone.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeptSocket {
    /// Its attachment.
    pub attachment: Attachment,
    /// When the runtime last answered its literal ping, if it ever did.
    pub last_auto_response: Option<Millis>,
}

/// What the runtime keeps of a room while its memory is gone (hibernation or
/// eviction): everything [`Room::restore`] rebuilds it from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Kept {
    /// The stored record ([`super::storage::read_stored`]).
    pub record: Option<JobRecord>,
    /// The stored delivered mark ([`Effect::MarkDelivered`]).
    pub delivered: Option<Seq>,
    /// The sockets that are still open (never those the room closed).
    pub sockets: Vec<KeptSocket>,
    /// The alarm, if one is set.
    pub alarm: Option<Millis>,
}

impl Room {
    /// The only way to build a room: from what the runtime kept (nothing, for
    /// a room that never stored a job). Deadlines come from what was kept
    /// (stored times, attachments, auto-response times), never from `now`;
    /// the effects (a catch-up, a moved alarm) come first.
    #[must_use]
    pub fn restore(config: RoomConfig, now: Millis, kept: Kept) -> (Self, Vec<Effect>) {
        let mut room = Self {
            config,
            live: None,
            pending: None,
            alarm: kept.alarm,
            seq_at_input: Seq(0),
        };
        let mut out = Vec::new();
        let Some(mut job) = kept.record else {
            for s in kept.sockets {
                out.push(close(s.attachment.socket, &GatewayError::Internal));
            }
            room.rearm(now, &mut out);
            return (room, out);
        };
        job.delivered = job.delivered.max(kept.delivered.unwrap_or_default());
        if let Some(legacy) = job.legacy_ended_at.take() {
            if let Phase::Completed { at, .. } | Phase::Failed { at, .. } | Phase::Canceled { at } =
                &mut job.phase
            {
                *at = legacy;
            }
        }
        // The old layout kept the ids in the record and did not number them:
        // number them now, and store them in chunks with the next write.
        let legacy_ids = job.remembered == 0 && !job.applied.is_empty();
        if legacy_ids {
            job.remembered = job.applied.len() as u64;
        }
        let mut sockets = BTreeMap::new();
        for s in kept.sockets {
            let a = s.attachment;
            job.next_socket = job.next_socket.max(a.socket.0.saturating_add(1));
            let last_active = a
                .last_frame
                .into_iter()
                .chain(s.last_auto_response)
                .fold(a.connected_at, Millis::max);
            sockets.insert(
                a.socket,
                Subscriber {
                    attachment: a,
                    last_active,
                    recent: VecDeque::new(),
                },
            );
        }
        let seq = job.seq;
        let behind = job.delivered < seq;
        job.delivered = seq;
        room.seq_at_input = seq;
        room.live = Some(Live {
            sockets,
            written_ids: if legacy_ids { 0 } else { job.remembered },
            ..Live::new(job, now)
        });
        if behind {
            // Evicted between a write and its fan-out: the sockets may have
            // missed events, so they get the catch-up a new socket would.
            let ids: Vec<SocketId> = room.sockets().keys().copied().collect();
            for id in ids {
                room.catch_up(now, id, None, &mut out);
            }
            out.push(Effect::MarkDelivered(seq));
        }
        room.rearm(now, &mut out);
        (room, out)
    }
}
