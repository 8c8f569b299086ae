//! Multi-row statements: one round trip for many rows.
//!
//! A statement is written once with `{values}` where its rows go; each chunk
//! of rows becomes `($1, $2, …), ($n, …)` there. Chunks stay under both
//! databases' parameter limits (SQLite 32766, PostgreSQL 65535). Every
//! parameter is typed by its [`Arg`], so PostgreSQL needs no casts even in
//! `update … from (values …)` (whose columns are `column1`, `column2`, … on
//! both databases).

use super::{Arg, Row, Tx};
use anyhow::{Result, ensure};

/// The most parameters one statement binds.
const MAX_PARAMS: usize = 30_000;

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

/// The chunks of `rows` and the SQL text of each.
fn chunks<'a>(
    sql: &'a str,
    rows: &'a [Vec<Arg>],
) -> Result<impl Iterator<Item = (String, Vec<Arg>)> + 'a> {
    let width = rows.first().map_or(1, Vec::len).max(1);
    ensure!(
        rows.iter().all(|r| r.len() == width),
        "rows of different widths for: {sql}"
    );
    ensure!(sql.contains("{values}"), "no {{values}} in: {sql}");
    let per = (MAX_PARAMS / width).max(1);
    Ok(rows.chunks(per).map(move |c| {
        let text = sql.replace("{values}", &values_list(1, c.len(), width));
        (text, c.iter().flatten().cloned().collect())
    }))
}

impl Tx {
    /// Runs `sql` for `rows` (see the module docs); returns rows affected.
    pub async fn exec_values(&mut self, sql: &str, rows: &[Vec<Arg>]) -> Result<u64> {
        let mut n = 0;
        for (text, args) in chunks(sql, rows)? {
            n += self.exec(&text, &args).await?;
        }
        Ok(n)
    }

    /// Runs the query `sql` for `rows` (see the module docs); returns every
    /// chunk's result rows, in chunk order.
    pub async fn rows_values(&mut self, sql: &str, rows: &[Vec<Arg>]) -> Result<Vec<Row>> {
        let mut out = Vec::new();
        for (text, args) in chunks(sql, rows)? {
            out.extend(self.rows(&text, &args).await?);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn values_lists_number_placeholders_row_by_row() {
        assert_eq!(super::values_list(1, 2, 2), "($1, $2), ($3, $4)");
        assert_eq!(super::values_list(3, 2, 1), "($3), ($4)");
    }
}
