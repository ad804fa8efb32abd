//! The storage layout (one key-value namespace per job), so that what one
//! event writes does not grow with the job:
//!
//! - [`RECORD_KEY`]: the hot state, the [`JobRecord`] without its remembered
//!   event ids (JSON);
//! - [`DELIVERED_KEY`]: the delivered mark (a number, [`Effect::MarkDelivered`]);
//! - `ids/0` … `ids/100`: the remembered event ids, [`IDS_PER_CHUNK`] to a
//!   chunk, in a ring of [`ID_CHUNKS`] keys: the `n`th id ever remembered
//!   (from 0) lives in chunk `n / IDS_PER_CHUNK`, under key
//!   `ids/{chunk % ID_CHUNKS}`. The ring holds the 1,000 newest ids however
//!   they straddle chunks, so nothing is ever deleted: a chunk is overwritten
//!   when its key comes round again.
//!
//! One event writes the hot state and the one chunk its id went into, in one
//! [`Write`] (one atomic `put` of several keys). A cold wake reads every key
//! at once (one `list`) and [`read_stored`] rebuilds the record. A record of
//! the old layout (one `job` value with the ids inside) still reads; the
//! first write after it moves its ids into chunks.

use super::*;

/// The key of the hot state.
pub const RECORD_KEY: &str = "job";
/// The key of the delivered mark.
pub const DELIVERED_KEY: &str = "delivered";
/// Remembered ids per chunk: one event writes at most this many ids.
pub const IDS_PER_CHUNK: u64 = 10;
/// Chunk keys in the ring: enough for [`REMEMBERED_EVENT_IDS`] ids that
/// begin in the middle of a chunk.
pub const ID_CHUNKS: u64 = REMEMBERED_EVENT_IDS as u64 / IDS_PER_CHUNK + 1;
/// Keys the runtime accepts in one atomic `put` of several keys.
pub const MAX_KEYS_PER_WRITE: usize = 128;

// The largest write (a full batch of ids, or the first write after an
// old-layout record) is the hot state and every chunk key.
const _: () = assert!((ID_CHUNKS as usize) < MAX_KEYS_PER_WRITE);
const _: () = assert!((REMEMBERED_EVENT_IDS as u64).is_multiple_of(IDS_PER_CHUNK));

/// The key of the chunk that holds the `n`th remembered id.
#[must_use]
pub fn chunk_key(n: u64) -> String {
    format!("ids/{}", (n / IDS_PER_CHUNK) % ID_CHUNKS)
}

/// One atomic storage write: each value (JSON text) under its key. The
/// adapter must write all of them in one storage operation (a `put` of
/// several keys) and await it before the next effect.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Write {
    /// Keys and values; the hot state first.
    pub entries: Vec<(String, String)>,
}

impl Write {
    /// Bytes of the keys and values written.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.entries.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

/// A chunk of remembered ids as stored.
#[derive(Serialize, Deserialize)]
struct Chunk<T> {
    /// The number of its first id (ids are numbered from 0 in the order
    /// they were remembered).
    from: u64,
    /// The ids and the seq each was applied at, oldest first.
    ids: T,
}

/// What stored data could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    /// The hot state is not a record.
    #[error("stored job record: {0}")]
    Record(serde_json::Error),
    /// A chunk of remembered ids is missing or unreadable.
    #[error("stored event ids under {key}: {problem}")]
    Ids {
        /// Its key.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// The write of `job` when the ids numbered from `written` on are not
/// stored yet (`job.remembered` when only the hot state changed).
pub(super) fn write(job: &JobRecord, written: u64) -> Write {
    // A record is plain data (strings, numbers, sequences): encoding it
    // cannot fail.
    let hot = serde_json::to_string(job).unwrap_or_default();
    let mut entries = vec![(RECORD_KEY.to_owned(), hot)];
    let newest = job.remembered;
    let oldest = newest.saturating_sub(job.applied.len() as u64);
    let mut from = written.max(oldest);
    // Each chunk that got a new id is written whole (the ids of it still
    // remembered), once.
    from -= (from - oldest).min(from % IDS_PER_CHUNK);
    while from < newest {
        let end = (from / IDS_PER_CHUNK + 1)
            .saturating_mul(IDS_PER_CHUNK)
            .min(newest);
        let range = usize::try_from(from - oldest).unwrap_or(usize::MAX)
            ..usize::try_from(end - oldest).unwrap_or(usize::MAX);
        let ids: Vec<&(String, Seq)> = job.applied.range(range).collect();
        let chunk = Chunk { from, ids };
        entries.push((
            chunk_key(from),
            serde_json::to_string(&chunk).unwrap_or_default(),
        ));
        from = end;
    }
    Write { entries }
}

/// Rebuilds the record from every stored key and its text value (other
/// keys, such as [`DELIVERED_KEY`], are ignored); `None` when no job is
/// stored.
///
/// # Errors
/// When the hot state or a chunk it needs cannot be read.
pub fn read_stored<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Option<JobRecord>, StoredError> {
    let values: BTreeMap<&str, &str> = entries.into_iter().collect();
    let Some(hot) = values.get(RECORD_KEY) else {
        return Ok(None);
    };
    let mut job: JobRecord = serde_json::from_str(hot).map_err(StoredError::Record)?;
    if job.remembered == 0 {
        // Nothing remembered, or the old layout with the ids inside:
        // [`Room::restore`] numbers them.
        return Ok(Some(job));
    }
    let newest = job.remembered;
    let oldest = newest.saturating_sub(REMEMBERED_EVENT_IDS as u64);
    let mut applied = VecDeque::with_capacity(REMEMBERED_EVENT_IDS);
    let mut n = oldest;
    while n < newest {
        let key = chunk_key(n);
        let problem = |problem: String| StoredError::Ids {
            key: key.clone(),
            problem,
        };
        let text = values
            .get(key.as_str())
            .ok_or_else(|| problem("missing".into()))?;
        let chunk: Chunk<Vec<(String, Seq)>> =
            serde_json::from_str(text).map_err(|e| problem(e.to_string()))?;
        if chunk.from / IDS_PER_CHUNK != n / IDS_PER_CHUNK || chunk.from > n {
            return Err(problem(format!(
                "holds ids from {}, not id {n}",
                chunk.from
            )));
        }
        let skip = usize::try_from(n - chunk.from).unwrap_or(usize::MAX);
        let before = applied.len();
        applied.extend(chunk.ids.into_iter().skip(skip));
        let got = applied.len() - before;
        let want = (n / IDS_PER_CHUNK + 1)
            .saturating_mul(IDS_PER_CHUNK)
            .min(newest)
            - n;
        if got as u64 != want {
            return Err(problem(format!("holds {got} of its {want} ids")));
        }
        n += want;
    }
    job.applied = applied;
    Ok(Some(job))
}
