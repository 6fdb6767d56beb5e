//! Native-mode storage of a batch's facts as columnar segments (migration
//! 0012): one `emission_fact_segments` row per (period start, account,
//! region) of the batch, holding that group's records as parallel arrays.
//!
//! The revision rules are those of the row layout: a record is identified by
//! (period start, account, region, record key); a higher revision replaces
//! the stored one and an equal or lower one is stale. The aggregator does
//! the per-record work PostgreSQL used to do per row:
//!
//! 1. `lookup_groups` reads, per group, the key hashes of its earlier
//!    segments, whether rows of the pre-segment layout exist there, and the
//!    account's default team (one round trip).
//! 2. Hash matches are confirmed against the stored record keys
//!    (`stored_in_segments`), and keys of groups with rows are looked up in
//!    `emission_facts` (`stored_in_rows`).
//! 3. Teams are resolved as [`crate::ingest`]'s row statement did: the
//!    record's own team, else the team tag of its own tags or (when it
//!    carried none) of the stored inventory, else the account's default
//!    team, else `untagged`.
//! 4. One statement (`WRITE_SQL`, built once) inserts the segments, marks replaced
//!    positions in `superseded` (or deletes replaced rows), and adds the
//!    difference, summed here per 5-minute bucket and group, to every rollup
//!    and to `org_rollup_pending`.
//!
//! The caller holds the (account, region) advisory locks of the batch, so no
//! other writer changes a group between the lookup and the write.

use std::collections::{BTreeMap, HashMap};

use sqlx::{Postgres, Row, Transaction};

use crate::accounting::{self, FIRST_PART, MEASURE_COLUMNS, MEASURES, Measures};
use crate::ingest::{StoreError, rollup_ctes};
use crate::model::FactRow;
use crate::time::{FIVE_MINUTES_S, floor_to};

/// 64-bit FNV-1a of the record key's UTF-8 bytes, as stored in
/// `emission_fact_segments.key_hashes`. Fixed for all time: stored hashes
/// are compared with it. A match is only a candidate; the stored key
/// decides.
pub fn key_hash(record_key: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in record_key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Consecutive facts (of a list sorted by start, account, region, key) that
/// share (period start, account, region): one segment.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group<'a> {
    start_unix_s: i64,
    account_id: &'a str,
    region: &'a str,
    /// Positions in the fact list.
    range: std::ops::Range<usize>,
}

fn groups_of<'a>(facts: &[&'a FactRow]) -> Vec<Group<'a>> {
    let mut groups: Vec<Group<'a>> = Vec::new();
    for (i, f) in facts.iter().enumerate() {
        match groups.last_mut() {
            Some(g) if g.start_unix_s == f.period_start_unix_s && g.account_id == f.account_id && g.region == f.region => {
                g.range.end = i + 1;
            }
            _ => groups.push(Group {
                start_unix_s: f.period_start_unix_s,
                account_id: &f.account_id,
                region: &f.region,
                range: i..i + 1,
            }),
        }
    }
    groups
}

/// What one group already holds, from [`lookup_groups`].
#[derive(Debug, Default)]
struct GroupState {
    /// (segment id, key hashes, superseded positions) of earlier segments.
    segments: Vec<(i64, Vec<i64>, Vec<i32>)>,
    /// Rows of the row layout exist for this group.
    has_rows: bool,
    /// The account's default team rule.
    default_team: Option<String>,
}

async fn lookup_groups(tx: &mut Transaction<'_, Postgres>, groups: &[Group<'_>]) -> Result<Vec<GroupState>, StoreError> {
    let rows = sqlx::query(
        "WITH g AS (
            SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY
                AS g(start_unix_s, account_id, region, gi)
         )
         SELECT g.gi::int AS gi, s.segment_id, s.key_hashes, s.superseded,
                EXISTS (SELECT FROM emission_facts f
                        WHERE f.period_start = to_timestamp(g.start_unix_s) AND f.account_id = g.account_id
                          AND f.region = g.region) AS has_rows,
                (SELECT r.default_team FROM account_team_rules r WHERE r.account_id = g.account_id) AS default_team
         FROM g LEFT JOIN emission_fact_segments s
                ON s.account_id = g.account_id AND s.region = g.region
               AND s.period_start = to_timestamp(g.start_unix_s)",
    )
    .bind(groups.iter().map(|g| g.start_unix_s).collect::<Vec<i64>>())
    .bind(groups.iter().map(|g| g.account_id).collect::<Vec<&str>>())
    .bind(groups.iter().map(|g| g.region).collect::<Vec<&str>>())
    .fetch_all(&mut **tx)
    .await?;
    let mut states: Vec<GroupState> = groups.iter().map(|_| GroupState::default()).collect();
    for row in rows {
        let gi: i32 = row.try_get("gi")?;
        let Some(state) = usize::try_from(gi).ok().and_then(|gi| states.get_mut(gi.wrapping_sub(1))) else {
            continue;
        };
        state.has_rows = row.try_get("has_rows")?;
        state.default_team = row.try_get("default_team")?;
        if let Some(segment_id) = row.try_get::<Option<i64>, _>("segment_id")? {
            state.segments.push((segment_id, row.try_get("key_hashes")?, row.try_get("superseded")?));
        }
    }
    Ok(states)
}

/// Where a stored record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    /// Position `ord` (1-based) of segment `segment_id`.
    Segment { segment_id: i64, ord: i32 },
    /// A row of `emission_facts`.
    Row,
}

/// The stored record of a key: its revision, group and values.
#[derive(Debug, Clone)]
struct Stored {
    place: Place,
    revision: i64,
    group: RollupGroup,
    values: Measures,
}

/// The rollup dimensions besides time, account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RollupGroup {
    resource_id: String,
    service: String,
    resource_type: String,
    team: String,
    quality: String,
}

/// Columns of a stored row [`stored_from_row`] reads, of the row alias
/// `alias` (parts of rows stored before migration 0022 by the unsplit rule).
fn qualified(alias: &str) -> String {
    format!(
        "{alias}.revision, {alias}.resource_id, {alias}.service, {alias}.resource_type, {alias}.team, {alias}.quality, {}",
        accounting::coalesced(&format!("{alias}."))
    )
}

fn stored_from_row(row: &sqlx::postgres::PgRow, place: Place) -> Result<Stored, sqlx::Error> {
    Ok(Stored {
            place,
            revision: row.try_get("revision")?,
            group: RollupGroup {
                resource_id: row.try_get("resource_id")?,
                service: row.try_get("service")?,
                resource_type: row.try_get("resource_type")?,
                team: row.try_get("team")?,
                quality: row.try_get("quality")?,
            },
            values: {
                let mut values = [0.0; MEASURES];
                for (v, c) in values.iter_mut().zip(MEASURE_COLUMNS) {
                    *v = row.try_get(c)?;
                }
                values
            },
    })
}

/// A hash match: fact `fi` may be stored at (segment, ord) of its group.
struct Candidate {
    fi: usize,
    segment_id: i64,
    ord: i32,
}

/// Hash matches between the facts of each group and the live positions of
/// the group's earlier segments.
fn candidates(facts: &[&FactRow], groups: &[Group<'_>], states: &[GroupState]) -> Vec<Candidate> {
    let mut out = Vec::new();
    for (g, state) in groups.iter().zip(states) {
        if state.segments.is_empty() {
            continue;
        }
        // (hash, fact position), sorted: matched by binary search, no allocation per entry.
        let mut by_hash: Vec<(i64, usize)> = g.range.clone().map(|fi| (key_hash(&facts[fi].record_key), fi)).collect();
        by_hash.sort_unstable();
        for (segment_id, hashes, superseded) in &state.segments {
            let mut superseded = superseded.clone();
            superseded.sort_unstable();
            for (i, hash) in hashes.iter().enumerate() {
                let first = by_hash.partition_point(|(h, _)| h < hash);
                let matches = by_hash[first..].iter().take_while(|(h, _)| h == hash);
                let ord = i32::try_from(i + 1).unwrap_or(i32::MAX);
                if matches.clone().next().is_none() || superseded.binary_search(&ord).is_ok() {
                    continue;
                }
                out.extend(matches.map(|&(_, fi)| Candidate { fi, segment_id: *segment_id, ord }));
            }
        }
    }
    out
}

/// The columns of a segment [`Stored`] needs, whole: fetched once per
/// candidate segment and indexed here. (Joining the candidates to the
/// unnested segment in SQL made PostgreSQL unnest the segment once per
/// candidate: 1.2 s for a batch superseding 1,000 records.)
struct SegmentColumns {
    segment_id: i64,
    record_keys: Vec<String>,
    revisions: Vec<i64>,
    resource_ids: Vec<String>,
    services: Vec<String>,
    resource_types: Vec<String>,
    teams: Vec<String>,
    qualities: Vec<String>,
    /// One array per measure column; the part arrays of a segment written
    /// before migration 0022 are empty (its parts follow the unsplit rule).
    measures: Vec<Vec<f64>>,
}

impl SegmentColumns {
    fn from_row(row: &sqlx::postgres::PgRow) -> Result<SegmentColumns, sqlx::Error> {
        Ok(SegmentColumns {
            segment_id: row.try_get("segment_id")?,
            record_keys: row.try_get("record_keys")?,
            revisions: row.try_get("revisions")?,
            resource_ids: row.try_get("resource_ids")?,
            services: row.try_get("services")?,
            resource_types: row.try_get("resource_types")?,
            teams: row.try_get("teams")?,
            qualities: row.try_get("qualities")?,
            measures: MEASURE_COLUMNS.iter().map(|c| row.try_get(*c)).collect::<Result<_, _>>()?,
        })
    }
}

impl SegmentColumns {
    /// The record at 1-based position `ord` if its key is `record_key`.
    fn stored(&self, ord: i32, record_key: &str) -> Option<Stored> {
        let i = usize::try_from(ord).ok()?.checked_sub(1)?;
        if self.record_keys.get(i)? != record_key {
            // A hash collision with another key is no match.
            return None;
        }
        Some(Stored {
            place: Place::Segment { segment_id: self.segment_id, ord },
            revision: *self.revisions.get(i)?,
            group: RollupGroup {
                resource_id: self.resource_ids.get(i)?.clone(),
                service: self.services.get(i)?.clone(),
                resource_type: self.resource_types.get(i)?.clone(),
                team: self.teams.get(i)?.clone(),
                quality: self.qualities.get(i)?.clone(),
            },
            values: {
                let total = |m: usize| self.measures.get(m).and_then(|a| a.get(i)).copied();
                let mut values = [0.0; MEASURES];
                for (m, v) in values.iter_mut().enumerate().take(FIRST_PART) {
                    *v = total(m)?;
                }
                if self.measures[FIRST_PART..].iter().all(|a| a.len() > i) {
                    for (m, v) in values.iter_mut().enumerate().skip(FIRST_PART) {
                        *v = total(m)?;
                    }
                } else {
                    let parts = crate::accounting::FactParts::unsplit(values[0], values[1], values[2], values[3], values[4]);
                    values[FIRST_PART..].copy_from_slice(&parts.values());
                }
                values
            },
        })
    }
}

/// The stored records of the candidates whose stored key equals the fact's
/// key, by fact position.
async fn stored_in_segments(
    tx: &mut Transaction<'_, Postgres>,
    facts: &[&FactRow],
    found: &[Candidate],
    into: &mut HashMap<usize, Stored>,
) -> Result<(), StoreError> {
    if found.is_empty() {
        return Ok(());
    }
    // Each candidate segment once, with its group's primary-key prefix.
    let mut segments: BTreeMap<i64, &FactRow> = BTreeMap::new();
    for c in found {
        segments.entry(c.segment_id).or_insert(facts[c.fi]);
    }
    let rows = sqlx::query(&format!(
        "SELECT s.segment_id, s.record_keys, s.revisions, s.resource_ids, s.services, s.resource_types, s.teams, s.qualities, {}
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[]) AS k(start_unix_s, account_id, region, segment_id)
         JOIN emission_fact_segments s
           ON s.account_id = k.account_id AND s.region = k.region
          AND s.period_start = to_timestamp(k.start_unix_s) AND s.segment_id = k.segment_id",
        accounting::columns("s.")
    ))
    .bind(segments.values().map(|f| f.period_start_unix_s).collect::<Vec<i64>>())
    .bind(segments.values().map(|f| f.account_id.as_str()).collect::<Vec<&str>>())
    .bind(segments.values().map(|f| f.region.as_str()).collect::<Vec<&str>>())
    .bind(segments.keys().copied().collect::<Vec<i64>>())
    .fetch_all(&mut **tx)
    .await?;
    let columns = rows.iter().map(SegmentColumns::from_row).collect::<Result<Vec<_>, _>>()?;
    let by_id: HashMap<i64, &SegmentColumns> = columns.iter().map(|c| (c.segment_id, c)).collect();
    for c in found {
        if let Some(stored) = by_id.get(&c.segment_id).and_then(|s| s.stored(c.ord, &facts[c.fi].record_key)) {
            into.insert(c.fi, stored);
        }
    }
    Ok(())
}

/// The stored rows (row layout) of the facts of groups that have rows.
async fn stored_in_rows(
    tx: &mut Transaction<'_, Postgres>,
    facts: &[&FactRow],
    groups: &[Group<'_>],
    states: &[GroupState],
    into: &mut HashMap<usize, Stored>,
) -> Result<(), StoreError> {
    let fis: Vec<usize> =
        groups.iter().zip(states).filter(|(_, s)| s.has_rows).flat_map(|(g, _)| g.range.clone()).collect();
    if fis.is_empty() {
        return Ok(());
    }
    let rows = sqlx::query(&format!(
        "SELECT k.fi, {}
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::int[])
             AS k(start_unix_s, account_id, region, key, fi)
         JOIN emission_facts f
           ON f.period_start = to_timestamp(k.start_unix_s) AND f.account_id = k.account_id
          AND f.region = k.region AND f.record_key = k.key",
        qualified("f")
    ))
    .bind(fis.iter().map(|&fi| facts[fi].period_start_unix_s).collect::<Vec<i64>>())
    .bind(fis.iter().map(|&fi| facts[fi].account_id.as_str()).collect::<Vec<&str>>())
    .bind(fis.iter().map(|&fi| facts[fi].region.as_str()).collect::<Vec<&str>>())
    .bind(fis.iter().map(|&fi| facts[fi].record_key.as_str()).collect::<Vec<&str>>())
    .bind(fis.iter().map(|&fi| i32::try_from(fi).unwrap_or(i32::MAX)).collect::<Vec<i32>>())
    .fetch_all(&mut **tx)
    .await?;
    for row in rows {
        let fi: i32 = row.try_get("fi")?;
        into.insert(usize::try_from(fi).unwrap_or(usize::MAX), stored_from_row(&row, Place::Row)?);
    }
    Ok(())
}

/// The value under `key` of a tag list (the last one wins, as in the JSON
/// object the row layout built), or `None`.
fn tag_value<'t>(tags: &'t [(String, String)], key: &str) -> Option<&'t str> {
    tags.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The team tag of the stored inventory of each fact that carries neither
/// a team nor tags, by fact position (absent: no inventory or no such tag).
async fn inventory_teams(
    tx: &mut Transaction<'_, Postgres>,
    facts: &[&FactRow],
    written: &[usize],
    team_tag_key: &str,
) -> Result<HashMap<usize, String>, StoreError> {
    let fis: Vec<usize> = written
        .iter()
        .copied()
        .filter(|&fi| facts[fi].team.as_deref().is_none_or(str::is_empty) && facts[fi].tags.is_none())
        .collect();
    if fis.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(
        "SELECT k.fi, r.tags ->> $5 AS team
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS k(account_id, region, resource_id, fi)
         JOIN resources r USING (account_id, region, resource_id)",
    )
    .bind(fis.iter().map(|&fi| facts[fi].account_id.as_str()).collect::<Vec<&str>>())
    .bind(fis.iter().map(|&fi| facts[fi].region.as_str()).collect::<Vec<&str>>())
    .bind(fis.iter().map(|&fi| facts[fi].resource_id.as_str()).collect::<Vec<&str>>())
    .bind(fis.iter().map(|&fi| i32::try_from(fi).unwrap_or(i32::MAX)).collect::<Vec<i32>>())
    .bind(team_tag_key)
    .fetch_all(&mut **tx)
    .await?;
    let mut teams = HashMap::new();
    for row in rows {
        let fi: i32 = row.try_get("fi")?;
        if let Some(team) = row.try_get::<Option<String>, _>("team")? {
            teams.insert(usize::try_from(fi).unwrap_or(usize::MAX), team);
        }
    }
    Ok(teams)
}

/// The team of a fact, in the order of the row layout's rule.
fn team_of<'a>(
    fact: &'a FactRow,
    team_tag_key: &str,
    inventory_team: Option<&'a str>,
    default_team: Option<&'a str>,
) -> &'a str {
    fn non_empty(t: Option<&str>) -> Option<&str> {
        t.filter(|t| !t.is_empty())
    }
    let tagged = match &fact.tags {
        Some(tags) => tag_value(tags, team_tag_key),
        None => inventory_team,
    };
    non_empty(fact.team.as_deref())
        .or(non_empty(tagged))
        .or(default_team)
        .unwrap_or("untagged")
}

/// A 5-minute rollup delta key: (bucket start, account, region, service,
/// resource type, team, quality, resource id). The resource id is for the
/// per-resource rollup (migration 0029); the other rollups sum over it.
type DeltaKey<'a> = (i64, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str);

/// Sums of every measure ([`MEASURE_COLUMNS`]) and the fact count.
#[derive(Debug, Clone, Copy, PartialEq)]
struct DeltaSums {
    values: Measures,
    count: i64,
}

impl Default for DeltaSums {
    fn default() -> Self {
        DeltaSums { values: [0.0; MEASURES], count: 0 }
    }
}

impl DeltaSums {
    fn add(&mut self, values: &Measures, sign: f64) {
        for (sum, v) in self.values.iter_mut().zip(values) {
            *sum += sign * v;
        }
        self.count += if sign < 0.0 { -1 } else { 1 };
    }
}

/// Start of the 5-minute rollup bucket of a fact.
fn bucket_of(f: &FactRow) -> i64 {
    floor_to(f.period_start_unix_s, FIVE_MINUTES_S)
}

fn values_of(f: &FactRow) -> Measures {
    f.measures()
}

/// Counts of [`write()`]: (written, replaced).
pub(crate) type Written = (u64, u64);

/// Stores `facts` (one per key, sorted by start, account, region, key, as
/// `ingest::highest_revision_per_key` returns them) as segments of batch
/// (`agent_id`, `sequence`) with the rollup difference. Returns (written,
/// replaced). With `restate` (only [`crate::restatement`], holding the
/// scope's lock, with facts it just read) a fact also replaces the stored
/// one of the same revision.
pub(crate) async fn write(
    tx: &mut Transaction<'_, Postgres>,
    facts: &[&FactRow],
    agent_id: &str,
    sequence: i64,
    team_tag_key: &str,
    restate: bool,
) -> Result<Written, StoreError> {
    if facts.is_empty() {
        return Ok((0, 0));
    }
    let groups = groups_of(facts);
    let states = lookup_groups(tx, &groups).await?;
    let mut stored: HashMap<usize, Stored> = HashMap::new();
    stored_in_segments(tx, facts, &candidates(facts, &groups, &states), &mut stored).await?;
    stored_in_rows(tx, facts, &groups, &states, &mut stored).await?;

    // Which facts are written, and what they replace.
    let mut written: Vec<usize> = Vec::with_capacity(facts.len());
    let mut replaced: Vec<(usize, Stored)> = Vec::new();
    for (fi, fact) in facts.iter().enumerate() {
        match stored.remove(&fi) {
            None => written.push(fi),
            Some(old) if i64::from(fact.revision) > old.revision || (restate && i64::from(fact.revision) == old.revision) => {
                written.push(fi);
                replaced.push((fi, old));
            }
            Some(_) => {}
        }
    }
    if written.is_empty() {
        return Ok((0, 0));
    }

    let inventory = inventory_teams(tx, facts, &written, team_tag_key).await?;
    // The account's default team of each fact, through its group.
    let mut default_teams: Vec<Option<&str>> = vec![None; facts.len()];
    for (g, state) in groups.iter().zip(&states) {
        default_teams[g.range.clone()].fill(state.default_team.as_deref());
    }
    let teams: Vec<&str> = written
        .iter()
        .map(|&fi| team_of(facts[fi], team_tag_key, inventory.get(&fi).map(String::as_str), default_teams[fi]))
        .collect();

    // The rollup difference, per 5-minute bucket and group.
    let mut delta: BTreeMap<DeltaKey<'_>, DeltaSums> = BTreeMap::new();
    for (&fi, team) in written.iter().zip(&teams) {
        let f = facts[fi];
        let key = (bucket_of(f), f.account_id.as_str(), f.region.as_str(), f.service.as_str(), f.resource_type.as_str(), *team, f.quality.as_str(), f.resource_id.as_str());
        delta.entry(key).or_default().add(&values_of(f), 1.0);
    }
    for (fi, old) in &replaced {
        let (f, g) = (facts[*fi], &old.group);
        let key = (bucket_of(f), f.account_id.as_str(), f.region.as_str(), g.service.as_str(), g.resource_type.as_str(), g.team.as_str(), g.quality.as_str(), g.resource_id.as_str());
        delta.entry(key).or_default().add(&old.values, -1.0);
    }

    execute_write(tx, facts, &written, &teams, &replaced, &delta, agent_id, sequence).await?;
    Ok((written.len() as u64, replaced.len() as u64))
}

/// The write statement (built once): `$1`-`$5` segment groups (start, account, region,
/// first and last position, exclusive, in the written arrays), `$6` agent
/// id, `$7` batch sequence, `$8`-`$16` the written records' keys and
/// dimensions, `$17`-`$31` their measures ([`MEASURE_COLUMNS`]), `$32`-`$34`
/// their lineage, `$35`-`$39` superseded positions (start, account, region,
/// segment id, ord), `$40`-`$43` replaced rows (start, account, region,
/// record key), `$44`-`$50` the 5-minute rollup difference's keys, `$51`-
/// `$65` its measures, `$66` its fact counts and `$67` its resource ids.
static WRITE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let rollups = rollup_ctes();
    let measures = accounting::columns("");
    let measure_slices = (0..MEASURES)
        .map(|i| format!("(${}::float8[])[g.lo + 1 : g.hi]", 17 + i))
        .collect::<Vec<_>>()
        .join(", ");
    let delta_params = accounting::float_params(51);
    format!(
        "WITH seg AS (
            INSERT INTO emission_fact_segments (period_start, account_id, region, agent_id, batch_sequence,
                   record_count, key_hashes, period_s, record_keys, revisions, resource_ids, resource_types,
                   services, teams, qualities, {measures}, methodology_versions, factor_sources, factor_vintages)
            SELECT to_timestamp(g.start_unix_s), g.account_id, g.region, $6, $7, g.hi - g.lo,
                   ($8::bigint[])[g.lo + 1 : g.hi], ($9::int[])[g.lo + 1 : g.hi], ($10::text[])[g.lo + 1 : g.hi],
                   ($11::bigint[])[g.lo + 1 : g.hi], ($12::text[])[g.lo + 1 : g.hi], ($13::text[])[g.lo + 1 : g.hi],
                   ($14::text[])[g.lo + 1 : g.hi], ($15::text[])[g.lo + 1 : g.hi], ($16::text[])[g.lo + 1 : g.hi],
                   {measure_slices},
                   ($32::text[])[g.lo + 1 : g.hi], ($33::text[])[g.lo + 1 : g.hi], ($34::text[])[g.lo + 1 : g.hi]
            FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::int[])
                AS g(start_unix_s, account_id, region, lo, hi)
            RETURNING 1
         ),
         sup AS (
            UPDATE emission_fact_segments AS s SET superseded = s.superseded || m.ords
            FROM (SELECT start_unix_s, account_id, region, segment_id, array_agg(ord ORDER BY ord) AS ords
                  FROM unnest($35::bigint[], $36::text[], $37::text[], $38::bigint[], $39::int[])
                      AS t(start_unix_s, account_id, region, segment_id, ord)
                  GROUP BY 1, 2, 3, 4) AS m
            WHERE s.account_id = m.account_id AND s.region = m.region
              AND s.period_start = to_timestamp(m.start_unix_s) AND s.segment_id = m.segment_id
            RETURNING 1
         ),
         del AS (
            DELETE FROM emission_facts AS f
            USING unnest($40::bigint[], $41::text[], $42::text[], $43::text[]) AS d(start_unix_s, account_id, region, key)
            WHERE f.period_start = to_timestamp(d.start_unix_s) AND f.account_id = d.account_id
              AND f.region = d.region AND f.record_key = d.key
            RETURNING 1
         ),
         delta5 AS (
            SELECT to_timestamp(bucket_unix_s) AS bucket_start, account_id, region, service, resource_type, team,
                   quality, {measures}, fact_count, resource_id
            FROM unnest($44::bigint[], $45::text[], $46::text[], $47::text[], $48::text[], $49::text[], $50::text[],
                        {delta_params}, $66::bigint[], $67::text[])
                AS t(bucket_unix_s, account_id, region, service, resource_type, team, quality,
                     {measures}, fact_count, resource_id)
         ),
         {rollups}
         SELECT 1"
    )
});

#[allow(clippy::too_many_arguments)]
async fn execute_write(
    tx: &mut Transaction<'_, Postgres>,
    facts: &[&FactRow],
    written: &[usize],
    teams: &[&str],
    replaced: &[(usize, Stored)],
    delta: &BTreeMap<DeltaKey<'_>, DeltaSums>,
    agent_id: &str,
    sequence: i64,
) -> Result<(), StoreError> {
    let w: Vec<&FactRow> = written.iter().map(|&fi| facts[fi]).collect();
    // Segment groups over the written facts (still sorted by group).
    let groups = groups_of(&w);
    let pos = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let texts = |get: for<'f> fn(&'f FactRow) -> &'f str| w.iter().map(|f| get(f)).collect::<Vec<&str>>();
    let marks: Vec<(&FactRow, i64, i32)> = replaced
        .iter()
        .filter_map(|(fi, old)| match old.place {
            Place::Segment { segment_id, ord } => Some((facts[*fi], segment_id, ord)),
            Place::Row => None,
        })
        .collect();
    let rows: Vec<&FactRow> =
        replaced.iter().filter(|(_, old)| old.place == Place::Row).map(|(fi, _)| facts[*fi]).collect();
    let delta: Vec<(&DeltaKey, &DeltaSums)> = delta.iter().collect();
    let mut query = sqlx::query(WRITE_SQL.as_str())
        .bind(groups.iter().map(|g| g.start_unix_s).collect::<Vec<i64>>())
        .bind(groups.iter().map(|g| g.account_id).collect::<Vec<&str>>())
        .bind(groups.iter().map(|g| g.region).collect::<Vec<&str>>())
        .bind(groups.iter().map(|g| pos(g.range.start)).collect::<Vec<i32>>())
        .bind(groups.iter().map(|g| pos(g.range.end)).collect::<Vec<i32>>())
        .bind(agent_id)
        .bind(sequence)
        .bind(w.iter().map(|f| key_hash(&f.record_key)).collect::<Vec<i64>>())
        .bind(w.iter().map(|f| i32::try_from(f.period_s).unwrap_or(i32::MAX)).collect::<Vec<i32>>())
        .bind(texts(|f| &f.record_key))
        .bind(w.iter().map(|f| i64::from(f.revision)).collect::<Vec<i64>>())
        .bind(texts(|f| &f.resource_id))
        .bind(texts(|f| &f.resource_type))
        .bind(texts(|f| &f.service))
        .bind(teams)
        .bind(texts(|f| f.quality.as_str()));
    let measures: Vec<Measures> = w.iter().map(|f| values_of(f)).collect();
    for i in 0..MEASURES {
        query = query.bind(measures.iter().map(|m| m[i]).collect::<Vec<f64>>());
    }
    query = query
        .bind(texts(|f| &f.methodology_version))
        .bind(texts(|f| &f.factor_source))
        .bind(texts(|f| &f.factor_vintage))
        .bind(marks.iter().map(|(f, _, _)| f.period_start_unix_s).collect::<Vec<i64>>())
        .bind(marks.iter().map(|(f, _, _)| f.account_id.as_str()).collect::<Vec<&str>>())
        .bind(marks.iter().map(|(f, _, _)| f.region.as_str()).collect::<Vec<&str>>())
        .bind(marks.iter().map(|(_, s, _)| *s).collect::<Vec<i64>>())
        .bind(marks.iter().map(|(_, _, o)| *o).collect::<Vec<i32>>())
        .bind(rows.iter().map(|f| f.period_start_unix_s).collect::<Vec<i64>>())
        .bind(rows.iter().map(|f| f.account_id.as_str()).collect::<Vec<&str>>())
        .bind(rows.iter().map(|f| f.region.as_str()).collect::<Vec<&str>>())
        .bind(rows.iter().map(|f| f.record_key.as_str()).collect::<Vec<&str>>())
        .bind(delta.iter().map(|(k, _)| k.0).collect::<Vec<i64>>())
        .bind(delta.iter().map(|(k, _)| k.1).collect::<Vec<&str>>())
        .bind(delta.iter().map(|(k, _)| k.2).collect::<Vec<&str>>())
        .bind(delta.iter().map(|(k, _)| k.3).collect::<Vec<&str>>())
        .bind(delta.iter().map(|(k, _)| k.4).collect::<Vec<&str>>())
        .bind(delta.iter().map(|(k, _)| k.5).collect::<Vec<&str>>())
        .bind(delta.iter().map(|(k, _)| k.6).collect::<Vec<&str>>());
    for i in 0..MEASURES {
        query = query.bind(delta.iter().map(|(_, s)| s.values[i]).collect::<Vec<f64>>());
    }
    query
        .bind(delta.iter().map(|(_, s)| s.count).collect::<Vec<i64>>())
        .bind(delta.iter().map(|(k, _)| k.7).collect::<Vec<&str>>())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(start: i64, key: &str) -> FactRow {
        FactRow { record_key: key.into(), period_s: 3_600, ..FactRow::sample(start, 3_600) }
    }

    #[test]
    fn key_hash_is_64_bit_fnv_1a() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(key_hash(""), 0xcbf2_9ce4_8422_2325_u64 as i64);
        assert_eq!(key_hash("a"), 0xaf63_dc4c_8601_ec8c_u64 as i64);
        assert_eq!(key_hash("foobar"), 0x8594_4171_f739_67e8_u64 as i64);
    }

    #[test]
    fn consecutive_facts_of_one_start_account_and_region_form_a_group() {
        let mut other_region = fact(0, "c");
        other_region.region = "us-east-1".into();
        let facts = [fact(0, "a"), fact(0, "b"), other_region, fact(3_600, "a")];
        let refs: Vec<&FactRow> = facts.iter().collect();
        let groups: Vec<(i64, &str, std::ops::Range<usize>)> =
            groups_of(&refs).into_iter().map(|g| (g.start_unix_s, g.region, g.range)).collect();
        assert_eq!(groups, vec![(0, "eu-west-1", 0..2), (0, "us-east-1", 2..3), (3_600, "eu-west-1", 3..4)]);
    }

    #[test]
    fn candidates_skip_superseded_positions_and_other_hashes() {
        let facts = [fact(0, "a"), fact(0, "b")];
        let refs: Vec<&FactRow> = facts.iter().collect();
        let groups = groups_of(&refs);
        let state = GroupState {
            // Positions: 1 = "b" (live), 2 = "a" (superseded), 3 = "x", 4 = "a" (live).
            segments: vec![(7, vec![key_hash("b"), key_hash("a"), key_hash("x"), key_hash("a")], vec![2])],
            has_rows: false,
            default_team: None,
        };
        let found: Vec<(usize, i64, i32)> =
            candidates(&refs, &groups, &[state]).iter().map(|c| (c.fi, c.segment_id, c.ord)).collect();
        assert_eq!(found, vec![(1, 7, 1), (0, 7, 4)]);
    }

    #[test]
    fn team_follows_the_row_layout_rule() {
        let key = "team";
        let mut f = fact(0, "a");
        // Nothing anywhere: the account default, else untagged.
        assert_eq!(team_of(&f, key, None, Some("platform")), "platform");
        assert_eq!(team_of(&f, key, None, None), "untagged");
        // No tags of its own: the inventory's tag.
        assert_eq!(team_of(&f, key, Some("web"), Some("platform")), "web");
        // Tags of its own win over the inventory, even without the key; an empty value counts as none.
        f.tags = Some(vec![("env".into(), "prod".into())]);
        assert_eq!(team_of(&f, key, Some("web"), Some("platform")), "platform");
        f.tags = Some(vec![("team".into(), "data".into()), ("team".into(), "ml".into())]);
        assert_eq!(team_of(&f, key, Some("web"), None), "ml");
        f.tags = Some(vec![("team".into(), String::new())]);
        assert_eq!(team_of(&f, key, Some("web"), None), "untagged");
        // The agent's own team comes first.
        f.team = Some("search".into());
        assert_eq!(team_of(&f, key, Some("web"), Some("platform")), "search");
    }

    #[test]
    fn delta_sums_add_and_subtract_with_a_count() {
        let mut d = DeltaSums::default();
        let mut a = [0.0; MEASURES];
        a[..5].copy_from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        a[MEASURES - 1] = 7.0;
        d.add(&a, 1.0);
        d.add(&[0.5; MEASURES], -1.0);
        let mut expected = [-0.5; MEASURES];
        expected[..5].copy_from_slice(&[0.5, 1.5, 2.5, 3.5, 4.5]);
        expected[MEASURES - 1] = 6.5;
        assert_eq!(d, DeltaSums { values: expected, count: 0 });
    }
}
