//! Operator and auditor views, as text: `clearway ops workflows`, `ops trace`,
//! `ops replay` and `ops verify`.

use crate::db::Db;
use crate::records;
use crate::runtime::now_us;
use anyhow::{Context, Result};
use std::fmt::Write;

fn ts(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).map_or_else(
        || us.to_string(),
        |t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
    )
}

/// Counts per state, then the workflows in `state` (or stuck ones), newest first.
pub async fn workflows(
    db: &Db,
    state: Option<&str>,
    stuck_after_s: Option<i64>,
    limit: i64,
) -> Result<String> {
    let mut out = String::new();
    let counts = records::counts(db).await?;
    writeln!(
        out,
        "{}",
        counts
            .iter()
            .map(|(s, n)| format!("{s}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    )?;
    let rows = records::list(
        db,
        state,
        stuck_after_s.map(|s| s * 1_000_000),
        now_us(),
        limit,
    )
    .await?;
    writeln!(
        out,
        "{:>12} {:<10} {:>10} {:<10} {:<8} {:>3} {:<27} last_error",
        "workflow", "kind", "order", "state", "step", "att", "updated"
    )?;
    for w in rows {
        writeln!(
            out,
            "{:>12} {:<10} {:>10} {:<10} {:<8} {:>3} {:<27} {}",
            w.id,
            w.kind,
            w.order_id.map_or("-".into(), |o| o.to_string()),
            w.state,
            w.step,
            w.attempts,
            ts(w.updated_at),
            w.last_error.unwrap_or_default()
        )?;
    }
    Ok(out)
}

/// One order's workflows and every step attempt, in time order.
pub async fn trace(db: &Db, order_id: u64) -> Result<String> {
    let mut out = String::new();
    let traced = records::trace(db, order_id).await?;
    anyhow::ensure!(!traced.is_empty(), "no workflow for order {order_id}");
    let fills = records::maker_fills(db, order_id).await?;
    let own = traced.into_iter().map(|(w, a)| {
        let about = format!("{}, order {order_id}", w.kind);
        (w, about, a)
    });
    let taken = fills.into_iter().map(|f| {
        let about = format!(
            "{} of order {}, account {}: filled this order as maker in trades {:?}",
            f.workflow.kind,
            f.workflow.order_id.map_or("-".into(), |o| o.to_string()),
            f.workflow.account_id,
            f.trade_ids
        );
        (f.workflow, about, f.attempts)
    });
    let mut all: Vec<_> = own.chain(taken).collect();
    all.sort_by_key(|(w, ..)| w.id);
    for (w, about, attempts) in all {
        writeln!(
            out,
            "workflow {} ({about}): {} at {}",
            w.id, w.state, w.step
        )?;
        for a in attempts {
            writeln!(
                out,
                "  {} {:<8} attempt {} {:<9} by {} ({} µs){}",
                ts(a.started_at),
                a.step,
                a.attempt,
                a.outcome,
                a.worker,
                a.finished_at - a.started_at,
                a.error.map(|e| format!(": {e}")).unwrap_or_default()
            )?;
        }
    }
    Ok(out)
}

/// A workflow unchanged for this long is stuck: [`replay`] takes it
/// without `force`. (Its steps retry for up to ≈ 1 minute on their own,
/// 8 attempts with backoff of 1–16 s, and a crashed worker's job is
/// re-enqueued after 12 s.)
pub const STUCK_AFTER_US: i64 = 60_000_000;

/// Why [`replay`] leaves a workflow alone unless forced: one in progress
/// (pending, running or retrying) that changed within [`STUCK_AFTER_US`]
/// and, when running, is within its lease — a worker has it in hand, and a
/// replay would only run its step a second time. `None` when it may go.
pub fn in_hand(
    workflow_id: u64,
    state: &str,
    step: &str,
    updated_at: i64,
    lease_until: Option<i64>,
    now: i64,
) -> Option<String> {
    let in_progress = matches!(state, "pending" | "running" | "retrying");
    let lease_over = state == "running" && lease_until.is_some_and(|l| l < now);
    let quiet = now.saturating_sub(updated_at).max(0);
    (in_progress && !lease_over && quiet < STUCK_AFTER_US).then(|| {
        format!(
            "workflow {workflow_id} is {state} at {step}, changed {}.{} s ago: a worker has it in hand, \
             not stuck (replay is for dead workflows and ones unchanged for {} s; `--force` enqueues it anyway)",
            quiet / 1_000_000,
            quiet % 1_000_000 / 100_000,
            STUCK_AFTER_US / 1_000_000
        )
    })
}

/// Re-enqueues one workflow from `step` (default: the step it stands at) —
/// the operator's redrive of a dead or stuck workflow. The workflow goes
/// back to `pending` at that step; idempotency makes re-running a step that
/// already took effect a no-op. The replay gets one fresh attempt: if it
/// fails again the workflow is dead again, with the new error. A completed
/// workflow is refused; so is one a worker has in hand ([`in_hand`]),
/// unless `force`.
pub async fn replay(
    services: &crate::config::Services,
    workflow_id: u64,
    step: Option<crate::workflow::Step>,
    force: bool,
) -> Result<String> {
    use crate::db::Arg;
    use crate::workflow::Step;
    let db = &services.db;
    let rows = db
        .rows(
            "select state, step, kind, updated_at, lease_until from workflows where id = $1",
            &[Arg::I64(workflow_id as i64)],
        )
        .await?;
    let row = rows
        .first()
        .with_context(|| format!("no workflow {workflow_id}"))?;
    let (state, current) = (row.text(0)?, row.text(1)?);
    let (updated_at, lease_until) = (row.i64(3)?, row.opt_i64(4)?);
    // A completed workflow has every step done and recorded: running one
    // again would publish its events twice and leave it waiting on a
    // hand-off its idempotent step does not make. Only dead or stuck ones.
    anyhow::ensure!(
        state != "completed",
        "workflow {workflow_id} is completed: every step is done and recorded, nothing to replay \
         (replay is for dead or stuck workflows; see `ops workflows --state dead` or `--stuck-after-secs`)"
    );
    if !force
        && let Some(why) = in_hand(
            workflow_id,
            &state,
            &current,
            updated_at,
            lease_until,
            now_us(),
        )
    {
        anyhow::bail!(why);
    }
    let step = match step {
        Some(s) => s,
        None => Step::parse(&current).context("the workflow's step is unknown")?,
    };
    db.exec(
        "update workflows set state = 'pending', step = $2, last_error = null, updated_at = $3, lease_until = null where id = $1",
        &[Arg::I64(workflow_id as i64), Arg::Text(step.as_str().into()), Arg::I64(now_us())],
    )
    .await?;
    let mut job = crate::runtime::StepJob::new(step, vec![workflow_id]);
    job.replay = Some(now_us().to_string());
    services.transport.enqueue(db, &job, 0).await?;
    Ok(format!(
        "workflow {workflow_id}: {state} at {current} -> pending at {step}, enqueued\n"
    ))
}

/// The auditor's check of the journal and the snapshots recovery trusts:
/// replays the whole journal from nothing (each workflow must reproduce
/// its recorded events, as in recovery) and, at each stored snapshot's
/// sequence number, compares the replayed engine and client order id
/// index with the snapshot's. An error names every snapshot that differs,
/// and the workflow the replay stopped at if it did.
pub async fn verify(db: &Db) -> Result<String> {
    use crate::client_ids::ClientIds;
    use crate::snapshot::{self, Contents};
    use std::collections::HashMap;
    // Every difference found, in words: all are named.
    let mut differences: Vec<String> = Vec::new();
    let mut pending = Vec::new();
    for stored in snapshot::all(db).await? {
        match serde_json::from_str::<Contents>(&stored.state) {
            Ok(contents) => pending.push((stored.seq, contents)),
            Err(e) => differences.push(format!(
                "the snapshot at sequence {} is malformed: {e}",
                stored.seq
            )),
        }
    }
    let total = pending.len();
    // The replay's index keeps what the snapshot with the longest window
    // needs (every place, when one is from before the window).
    let keep = pending
        .iter()
        .map(|(_, c)| c.client_id_window_us.unwrap_or(u64::MAX))
        .max()
        .unwrap_or(0);
    // Oldest first, each checked once the replay reaches its sequence number.
    let mut pending = pending.into_iter().peekable();
    let mut ids = ClientIds::with_window(keep);
    let mut checked = Vec::new();
    let mut workflows = 0u64;
    let engine = crate::recovery::rebuild_with(db, crate::config::engine_config(), |wf, engine| {
        workflows += 1;
        ids.record(&wf.command, &wf.events);
        ids.expire(wf.ts);
        while let Some((seq, contents)) = pending.next_if(|(seq, _)| *seq <= engine.last_seq()) {
            let problem = if seq != engine.last_seq() {
                Some("no workflow of the journal ends at that sequence number".to_string())
            } else if contents.engine != engine.snapshot() {
                Some("its engine state differs from the journal's replay".to_string())
            } else {
                // An entry without a client order id makes `theirs` None.
                let theirs: Option<HashMap<_, _>> = contents
                    .client_ids
                    .into_iter()
                    .map(|e| Some((e.key()?, e)))
                    .collect();
                // What the intake's index held then: the places within its
                // window of this last command (every place, before the window).
                let window = contents.client_id_window_us.unwrap_or(u64::MAX);
                let ours: Option<HashMap<_, _>> = ids
                    .entries()
                    .into_iter()
                    .filter(|e| e.kept(window, wf.ts))
                    .map(|e| Some((e.key()?, (*e).clone())))
                    .collect();
                (theirs != ours).then(|| {
                    "its client order id index differs from the journal's replay".to_string()
                })
            };
            match problem {
                Some(p) => differences.push(format!("the snapshot at sequence {seq}: {p}")),
                None => checked.push(seq),
            }
        }
    })
    .await
    .context("the journal does not replay");
    let engine = match engine {
        Ok(engine) if differences.is_empty() => engine,
        Ok(_) => anyhow::bail!("{}", differences.join("\n")),
        Err(e) if differences.is_empty() => return Err(e),
        // The snapshots before the workflow it stopped at were checked.
        Err(e) => anyhow::bail!("{}\n{e:#}", differences.join("\n")),
    };
    let mut out = format!(
        "journal: {workflows} workflows replayed to sequence {}, each reproduced its recorded events\n",
        engine.last_seq()
    );
    for seq in &checked {
        let _ = writeln!(
            out,
            "snapshot at sequence {seq}: equals the journal's replay"
        );
    }
    for (seq, _) in pending {
        let _ = writeln!(
            out,
            "snapshot at sequence {seq}: past the journal's end, not checked"
        );
    }
    let _ = writeln!(out, "{} of {total} snapshots checked", checked.len());
    Ok(out)
}

/// The auditor's check of the records against the journal ([`crate::audit`]):
/// ledger legs, trade and order rows and archived records per workflow,
/// the rows no event implies, then the balances. An error lists what
/// disagrees.
pub async fn verify_records(env: &crate::runtime::StepEnv) -> Result<String> {
    let f = crate::audit::check(env).await?;
    if !f.is_clean() {
        let mut out = format!(
            "the records disagree with the journal ({} problems):\n",
            f.problems.len() as u64 + f.unnamed
        );
        for p in &f.problems {
            let _ = writeln!(out, "- {p}");
        }
        if f.unnamed > 0 {
            let _ = writeln!(out, "- and {} more", f.unnamed);
        }
        anyhow::bail!("{}", out.trim_end());
    }
    Ok(format!(
        "records: {} workflows; {} ledger legs and {} trade rows as their events imply; \
         {} order rows as the events of their orders leave them; \
         {} events on the stream as the journal has them; \
         {} archived records with their receipts' SHA-256, the journal's input and its legs; \
         {} balances equal their legs, every asset's legs sum to zero\n",
        f.workflows, f.legs, f.trades, f.orders, f.events, f.archived, f.balances
    ))
}

/// `ops verify`: [`verify`] (the journal and the snapshots), then
/// [`verify_records`], each whatever the other finds. The report of each
/// check that passes is written to `out` as it ends; the error names every
/// disagreement of both.
pub async fn verify_all(
    env: &crate::runtime::StepEnv,
    out: &mut impl std::io::Write,
) -> Result<()> {
    let journal = verify(&env.db).await;
    if let Ok(report) = &journal {
        write!(out, "{report}").context("Failed to write the report")?;
        out.flush().context("Failed to write the report")?;
    }
    let records = verify_records(env).await;
    if let Ok(report) = &records {
        write!(out, "{report}").context("Failed to write the report")?;
    }
    match (journal, records) {
        (Ok(_), Ok(_)) => Ok(()),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Err(journal), Err(records)) => anyhow::bail!("{journal:#}\n{records:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workflow_in_hand_is_left_alone_and_a_stuck_or_dead_one_is_not() {
        let now = 1_000_000_000_000;
        let just = now - 2_000_000;
        let long_ago = now - STUCK_AFTER_US - 1;
        for state in ["pending", "retrying"] {
            let why = in_hand(7, state, "persist", just, None, now).expect("in hand");
            assert!(
                why.contains("--force") && why.contains("2.0 s ago"),
                "{why}"
            );
            assert_eq!(in_hand(7, state, "persist", long_ago, None, now), None);
        }
        // Running within its lease is in hand; past its lease it is stuck.
        assert!(in_hand(7, "running", "archive", just, Some(now + 1), now).is_some());
        assert_eq!(
            in_hand(7, "running", "archive", just, Some(now - 1), now),
            None
        );
        // Dead ones are what replay is for (completed ones are refused elsewhere).
        assert_eq!(in_hand(7, "dead", "settle", just, None, now), None);
    }
}
