//! Rows as they come back from either database: [`Val`]s, with decimals
//! rendered exactly as text.

use anyhow::{Context, Result, bail};
use rust_decimal::Decimal;
use sqlx::{Column, Row as _, TypeInfo, ValueRef};
use std::str::FromStr;

/// A value read back from a row.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    /// An integer (or a boolean on SQLite).
    I64(i64),
    /// Text, or a decimal rendered exactly.
    Text(String),
    /// A boolean (PostgreSQL).
    Bool(bool),
    /// SQL NULL.
    Null,
}

/// One result row.
#[derive(Clone, Debug, PartialEq)]
pub struct Row(pub Vec<Val>);

impl Row {
    /// Column `i` as an integer.
    pub fn i64(&self, i: usize) -> Result<i64> {
        match &self.0[i] {
            Val::I64(v) => Ok(*v),
            Val::Bool(b) => Ok(i64::from(*b)),
            other => bail!("column {i}: expected an integer, got {other:?}"),
        }
    }
    /// Column `i` as an optional integer.
    pub fn opt_i64(&self, i: usize) -> Result<Option<i64>> {
        match &self.0[i] {
            Val::Null => Ok(None),
            _ => self.i64(i).map(Some),
        }
    }
    /// Column `i` as text.
    pub fn text(&self, i: usize) -> Result<String> {
        match &self.0[i] {
            Val::Text(v) => Ok(v.clone()),
            other => bail!("column {i}: expected text, got {other:?}"),
        }
    }
    /// Column `i` as optional text.
    pub fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match &self.0[i] {
            Val::Null => Ok(None),
            _ => self.text(i).map(Some),
        }
    }
    /// Column `i` as an exact decimal.
    pub fn dec(&self, i: usize) -> Result<Decimal> {
        let t = self.text(i)?;
        Decimal::from_str(&t).with_context(|| format!("column {i}: {t:?} is not a decimal"))
    }
    /// Column `i` as a boolean.
    pub fn bool(&self, i: usize) -> Result<bool> {
        Ok(self.i64(i)? != 0)
    }
}

pub(super) fn pg_row(row: &sqlx::postgres::PgRow) -> Result<Row> {
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        if row.try_get_raw(i)?.is_null() {
            out.push(Val::Null);
            continue;
        }
        out.push(match col.type_info().name() {
            "INT8" => Val::I64(row.try_get::<i64, _>(i)?),
            "INT4" => Val::I64(i64::from(row.try_get::<i32, _>(i)?)),
            "INT2" => Val::I64(i64::from(row.try_get::<i16, _>(i)?)),
            "BOOL" => Val::Bool(row.try_get::<bool, _>(i)?),
            "NUMERIC" => Val::Text(row.try_get::<Decimal, _>(i)?.normalize().to_string()),
            _ => Val::Text(row.try_get::<String, _>(i)?),
        });
    }
    Ok(Row(out))
}

pub(super) fn lite_row(row: &sqlx::sqlite::SqliteRow) -> Result<Row> {
    let mut out = Vec::with_capacity(row.len());
    for i in 0..row.len() {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            out.push(Val::Null);
            continue;
        }
        let kind = raw.type_info().name().to_string();
        out.push(match kind.as_str() {
            "INTEGER" | "BOOLEAN" => Val::I64(row.try_get::<i64, _>(i)?),
            _ => Val::Text(row.try_get::<String, _>(i)?),
        });
    }
    Ok(Row(out))
}
