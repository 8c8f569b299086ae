//! Multi-row statements: one round trip, and one short SQL text, for many rows.
//!
//! A statement is written once with `{rows}` where a row source goes, used
//! as `select * from {rows} where true` (inserts; `where true` keeps SQLite
//! from reading `on conflict` as a join), `update … from {rows}`, or
//! `in (select column1 from {rows})`. The source is always aliased `v` with
//! columns `column1`, `column2`, …:
//! - PostgreSQL: `unnest($1::int8[], $2::text[], …) as v(column1, …)`, one
//!   array parameter per column, so the text (and its prepared plan) does not
//!   depend on the number of rows;
//! - SQLite: `(values ($1, $2), …) as v`, chunked under its 32766-parameter
//!   limit (far under it: see `MAX_PARAMS`).

use super::{Arg, Row, Tx, Values};
use anyhow::{Result, bail, ensure};

/// The most parameters one SQLite statement binds (its limit is 32766):
/// sqlx-sqlite finds each parameter by name among all of the statement's
/// (`sqlite3_bind_parameter_name`), which is quadratic — at 30,000 it was
/// half of the whole run's CPU time, and at 1,000 still 8% of the demo's
/// (`sqlite3_bind_parameter_name` and `strncmp` under `perf`).
const MAX_PARAMS: usize = 250;

/// `($from, …), (…)`: `rows` tuples of `width` placeholders.
pub fn values_list(from: usize, rows: usize, width: usize) -> String {
    let mut s = String::with_capacity(rows * width * 7);
    for r in 0..rows {
        if r > 0 {
            s.push_str(", ");
        }
        s.push('(');
        for c in 0..width {
            if c > 0 {
                s.push_str(", ");
            }
            s.push('$');
            s.push_str(&(from + r * width + c).to_string());
        }
        s.push(')');
    }
    s
}

/// One PostgreSQL array per column of `rows`, and its SQL type.
fn columns(rows: &[Vec<Arg>], width: usize) -> Result<Vec<(Arg, &'static str)>> {
    let mut out = Vec::with_capacity(width);
    for c in 0..width {
        let cells = rows.iter().map(|r| &r[c]);
        let kind = cells
            .clone()
            .find(|a| !matches!(a, Arg::NullI64 | Arg::NullText | Arg::NullDec))
            .unwrap_or(&rows[0][c]);
        out.push(match kind {
            Arg::I64(_) | Arg::NullI64 => (
                Values::I64(
                    cells
                        .map(|a| if let Arg::I64(v) = a { Some(*v) } else { None })
                        .collect(),
                ),
                "int8[]",
            ),
            Arg::Text(_) | Arg::NullText => (
                Values::Text(
                    cells
                        .map(|a| {
                            if let Arg::Text(v) = a {
                                Some(v.clone())
                            } else {
                                None
                            }
                        })
                        .collect(),
                ),
                "text[]",
            ),
            Arg::Dec(_) | Arg::NullDec => (
                Values::Dec(
                    cells
                        .map(|a| if let Arg::Dec(v) = a { Some(*v) } else { None })
                        .collect(),
                ),
                "numeric[]",
            ),
            Arg::Bool(_) => (
                Values::Bool(
                    cells
                        .map(|a| if let Arg::Bool(v) = a { Some(*v) } else { None })
                        .collect(),
                ),
                "bool[]",
            ),
            other => bail!("column {c}: {other:?} cannot go in a multi-row statement"),
        });
    }
    Ok(out.into_iter().map(|(c, t)| (Arg::Array(c), t)).collect())
}

/// The statements (text and arguments) that run `sql` over `rows`.
fn statements(pg: bool, sql: &str, rows: &[Vec<Arg>]) -> Result<Vec<(String, Vec<Arg>)>> {
    ensure!(sql.contains("{rows}"), "no {{rows}} in: {sql}");
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let width = rows[0].len();
    ensure!(
        width > 0 && rows.iter().all(|r| r.len() == width),
        "rows of different widths for: {sql}"
    );
    if pg {
        return Ok(vec![pg_statement(sql, rows, width)?]);
    }
    Ok(rows
        .chunks((MAX_PARAMS / width).max(1))
        .map(|c| {
            let source = format!("(values {}) as v", values_list(1, c.len(), width));
            (
                sql.replace("{rows}", &source),
                c.iter().flatten().cloned().collect(),
            )
        })
        .collect())
}

/// The one statement for all of `rows`: one array per column. (One message
/// however large: sqlx-core is patched to set `TCP_NODELAY`, see
/// `infra/vendor/README.md`; before, statements were cut at 8 KiB.)
fn pg_statement(sql: &str, rows: &[Vec<Arg>], width: usize) -> Result<(String, Vec<Arg>)> {
    let cols = columns(rows, width)?;
    let arrays: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, (_, t))| format!("${}::{t}", i + 1))
        .collect();
    let names: Vec<String> = (1..=width).map(|i| format!("column{i}")).collect();
    let source = format!("unnest({}) as v({})", arrays.join(", "), names.join(", "));
    let args = cols.into_iter().map(|(a, _)| a).collect();
    Ok((sql.replace("{rows}", &source), args))
}

impl super::Db {
    /// PostgreSQL: runs `sql` over `rows` (see the module docs) as ONE
    /// statement, a transaction of its own: one round trip, on `held`'s
    /// connection. `extra` arguments follow the row columns (`$w+1`, … for
    /// rows `w` wide).
    pub async fn exec_values_alone(
        &self,
        held: &mut super::HeldConnection,
        sql: &str,
        rows: &[Vec<Arg>],
        extra: Vec<Arg>,
    ) -> Result<u64> {
        ensure!(!rows.is_empty(), "no rows for: {sql}");
        let (text, mut args) = pg_statement(sql, rows, rows[0].len())?;
        args.extend(extra);
        self.exec_held(held, &text, &args).await
    }
}

impl Tx {
    /// Runs `sql` over `rows` (see the module docs); returns rows affected.
    pub async fn exec_values(&mut self, sql: &str, rows: &[Vec<Arg>]) -> Result<u64> {
        let mut n = 0;
        for (text, args) in statements(self.is_pg(), sql, rows)? {
            n += self.exec(&text, &args).await?;
        }
        Ok(n)
    }

    /// Runs the query `sql` over `rows` (see the module docs); returns every
    /// statement's result rows, in order.
    pub async fn rows_values(&mut self, sql: &str, rows: &[Vec<Arg>]) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        for (text, args) in statements(self.is_pg(), sql, rows)? {
            out.extend(self.rows(&text, &args).await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lists_number_placeholders_row_by_row() {
        assert_eq!(values_list(1, 2, 2), "($1, $2), ($3, $4)");
        assert_eq!(values_list(3, 2, 1), "($3), ($4)");
    }

    #[test]
    fn postgres_gets_one_array_per_column() {
        let rows = vec![
            vec![Arg::I64(1), Arg::NullText],
            vec![Arg::I64(2), Arg::Text("b".into())],
        ];
        let s = statements(true, "select * from {rows}", &rows).unwrap();
        assert_eq!(
            s[0].0,
            "select * from unnest($1::int8[], $2::text[]) as v(column1, column2)"
        );
        assert_eq!(
            s[0].1[1],
            Arg::Array(Values::Text(vec![None, Some("b".into())]))
        );
        let s = statements(false, "select * from {rows}", &rows).unwrap();
        assert_eq!(s[0].0, "select * from (values ($1, $2), ($3, $4)) as v");
    }
}
