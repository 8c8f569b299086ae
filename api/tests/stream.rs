//! `GET /v1/ws`: market data that syncs a local book, and own order progress.

use crate::helpers::*;
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::BTreeMap;

type Book = (BTreeMap<Decimal, Decimal>, BTreeMap<Decimal, Decimal>);

fn levels(v: &Value) -> BTreeMap<Decimal, Decimal> {
    v.as_array()
        .expect("levels")
        .iter()
        .map(|l| (dec(&l["price"]), dec(&l["quantity"])))
        .collect()
}

async fn snapshot(app: &TestApp) -> (u64, Book) {
    let b: Value = app
        .get_json(BUYER, "/v1/markets/BTC-USD/book?depth=500")
        .await;
    let seq = b["sequence"].as_u64().expect("a sequence");
    (seq, (levels(&b["bids"]), levels(&b["asks"])))
}

/// Applies the diffs among `msgs` to a snapshot at `seq`, as a client would;
/// returns the book and the sequence reached.
fn apply_diffs(mut seq: u64, mut book: Book, msgs: &[Value]) -> (u64, Book) {
    for d in msgs.iter().filter(|m| m["channel"] == "depth:BTC-USD") {
        let d = &d["data"];
        let (first, last) = (
            d["first_sequence"].as_u64().unwrap(),
            d["last_sequence"].as_u64().unwrap(),
        );
        assert!(first <= last, "{d}");
        if last <= seq {
            continue;
        }
        assert!(first <= seq + 1, "a gap before {d} (book at {seq})");
        for (side, levels) in [(&mut book.0, &d["bids"]), (&mut book.1, &d["asks"])] {
            for l in levels.as_array().unwrap() {
                let (p, q) = (dec(&l["price"]), dec(&l["quantity"]));
                if q.is_zero() {
                    side.remove(&p);
                } else {
                    side.insert(p, q);
                }
            }
        }
        seq = last;
    }
    (seq, book)
}

fn progress_of(msgs: &[Value], order_id: u64) -> Vec<String> {
    let progress: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["channel"] == "orders" && m["data"]["type"] == "workflow")
        .filter(|m| m["data"]["order_id"] == order_id && m["data"]["kind"] == "order")
        .collect();
    // Each says the state after its own step: only the last is completed.
    for (i, m) in progress.iter().enumerate() {
        let done = m["data"]["state"] == "completed";
        assert_eq!(done, i + 1 == 4, "{progress:?}");
    }
    progress
        .iter()
        .map(|m| m["data"]["progress"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_websocket_client_syncs_the_book_from_diffs_and_sees_its_orders_progress() {
    let app = spawn_app().await;
    let mut ws = app
        .ws(BUYER, &["trades:BTC-USD", "depth:BTC-USD", "orders"])
        .await;
    let (seq0, book0) = snapshot(&app).await;

    let maker = app.place(SELLER, limit_sell("50000", "0.5")).await;
    assert_eq!(maker.status(), 202);
    let taker = app.place(BUYER, limit_buy("50100", "0.2")).await;
    assert_eq!(taker.status(), 202);
    let taker: Value = taker.json().await.unwrap();
    let taker_id = taker["order_id"].as_u64().unwrap();
    let last_seq = taker["sequence"].as_u64().unwrap();

    let msgs = ws
        .read_until("the trade, the diffs and the order archived", |m| {
            let depth_done = m.iter().any(|x| {
                x["channel"] == "depth:BTC-USD"
                    && x["data"]["last_sequence"].as_u64() >= Some(last_seq)
            });
            depth_done && progress_of(m, taker_id).contains(&"archived".to_string())
        })
        .await;

    let trades: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["channel"] == "trades:BTC-USD")
        .collect();
    assert_eq!(trades.len(), 1, "{trades:?}");
    assert_eq!(dec(&trades[0]["data"]["price"]), Decimal::from(50_000));
    assert_eq!(dec(&trades[0]["data"]["quantity"]), Decimal::new(2, 1));

    let diff_seqs: Vec<u64> = msgs
        .iter()
        .filter(|m| m["channel"] == "depth:BTC-USD")
        .map(|m| m["data"]["last_sequence"].as_u64().unwrap())
        .collect();
    assert!(diff_seqs.windows(2).all(|w| w[0] < w[1]), "{diff_seqs:?}");
    let (seq, book) = apply_diffs(seq0, book0, &msgs);
    let (now_seq, now_book) = snapshot(&app).await;
    assert!(seq <= now_seq);
    assert_eq!(
        book, now_book,
        "the diffs applied to the snapshot give the new book"
    );
    assert_eq!(
        book.1.get(&Decimal::from(50_000)),
        Some(&Decimal::new(3, 1))
    );

    // Own order updates only: the taker's accepted, fill and close.
    let own: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["channel"] == "orders" && m["data"]["type"] == "order")
        .collect();
    assert!(
        own.iter().all(|m| m["data"]["order_id"] == taker_id),
        "{own:?}"
    );
    let events: Vec<&str> = own
        .iter()
        .map(|m| m["data"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["accepted", "fill", "closed"]);
    assert_eq!(
        progress_of(&msgs, taker_id),
        ["persisted", "settled", "published", "archived"]
    );

    let metrics = app.metrics().await;
    assert!(metrics.contains("clearway_ws_clients 1"), "{metrics}");
}

#[tokio::test]
async fn a_maker_sees_the_progress_of_the_workflow_that_settles_its_fill() {
    let app = spawn_app().await;
    let mut ws = app.ws(SELLER, &["orders"]).await;
    let maker = app.place(SELLER, limit_sell("50000", "0.5")).await;
    assert_eq!(maker.status(), 202);
    let maker_id = maker.json::<Value>().await.unwrap()["order_id"]
        .as_u64()
        .unwrap();
    let taker = app.place(BUYER, limit_buy("50100", "0.2")).await;
    assert_eq!(taker.status(), 202);
    let taker: Value = taker.json().await.unwrap();
    let taker_id = taker["order_id"].as_u64().unwrap();

    let for_maker = |msgs: &[Value]| -> Vec<Value> {
        msgs.iter()
            .filter(|m| m["data"]["type"] == "workflow" && m["data"]["role"] == "maker")
            .map(|m| m["data"].clone())
            .collect()
    };
    let msgs = ws
        .read_until("the maker's fill archived", |m| {
            for_maker(m).iter().any(|d| d["progress"] == "archived")
        })
        .await;

    let fill: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["data"]["event"] == "fill")
        .collect();
    assert_eq!(fill.len(), 1, "{msgs:?}");
    assert_eq!(fill[0]["data"]["order_id"], maker_id);
    assert_eq!(fill[0]["data"]["liquidity"], "maker");
    let settled_by = fill[0]["data"]["workflow_id"].as_u64().unwrap();

    let progress = for_maker(&msgs);
    let steps: Vec<&str> = progress
        .iter()
        .map(|d| d["progress"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["persisted", "settled", "published", "archived"]);
    for d in &progress {
        assert_eq!(d["workflow_id"], settled_by, "{d}");
        assert_eq!(d["order_id"], maker_id, "{d}");
    }
    assert_eq!(progress[3]["state"], "completed");

    // The trace names the same workflow; nothing the seller got names the
    // buyer's order.
    let trace = app
        .get_json(SELLER, &format!("/v1/orders/{maker_id}/trace"))
        .await;
    assert_eq!(
        trace["maker_fills"][0]["workflow_id"], settled_by,
        "{trace}"
    );
    let text = serde_json::to_string(&msgs).unwrap();
    assert!(
        !text.contains(&format!("\"order_id\":{taker_id}")),
        "{text}"
    );
}

#[tokio::test]
async fn a_websocket_needs_a_token_and_accepts_it_in_the_query() {
    let app = spawn_app().await;
    let url = app.base.replacen("http://", "ws://", 1) + "/v1/ws";
    assert!(tokio_tungstenite::connect_async(url.clone()).await.is_err());
    let with_query = format!("{url}?token={}", token(SELLER, &["trade"]));
    let (mut stream, _) = tokio_tungstenite::connect_async(with_query).await.unwrap();
    use futures::{SinkExt, StreamExt};
    let bad = r#"{"op":"subscribe","channels":["trades:DOGE-USD"]}"#;
    stream
        .send(tokio_tungstenite::tungstenite::Message::Text(bad.into()))
        .await
        .unwrap();
    let answer = stream.next().await.unwrap().unwrap();
    let answer: Value = serde_json::from_str(answer.to_text().unwrap()).unwrap();
    assert_eq!(answer["code"], "unknown_channel", "{answer}");
}

#[tokio::test]
async fn a_websocket_client_sending_too_many_ops_is_rate_limited() {
    use futures::{SinkExt, StreamExt};
    let app = spawn_app().await;
    let url = app.base.replacen("http://", "ws://", 1) + "/v1/ws";
    let with_query = format!("{url}?token={}", token(SELLER, &["trade"]));
    let (mut stream, _) = tokio_tungstenite::connect_async(with_query).await.unwrap();
    let op = r#"{"op":"subscribe","channels":["trades:BTC-USD"]}"#;
    let mut answers = vec![];
    for _ in 0..21 {
        stream
            .send(tokio_tungstenite::tungstenite::Message::Text(op.into()))
            .await
            .unwrap();
        let answer = stream.next().await.unwrap().unwrap();
        let answer: Value = serde_json::from_str(answer.to_text().unwrap()).unwrap();
        answers.push(answer);
    }
    assert!(
        answers[..20].iter().all(|a| a["type"] == "subscribed"),
        "{answers:?}"
    );
    assert_eq!(answers[20]["code"], "rate_limited", "{}", answers[20]);
}

#[tokio::test]
async fn a_websocket_session_answers_close_refuses_binary_oversized_and_non_utf8_messages() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
    let app = spawn_app().await;
    let url = app.base.replacen("http://", "ws://", 1) + "/v1/ws";
    let with_query = format!("{url}?token={}", token(SELLER, &["trade"]));
    let open = || tokio_tungstenite::connect_async(with_query.clone());

    let (mut stream, _) = open().await.unwrap();
    stream
        .send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    let answer = stream.next().await.unwrap().unwrap();
    let answer: Value = serde_json::from_str(answer.to_text().unwrap()).unwrap();
    assert_eq!(answer["code"], "text_only", "{answer}");
    // The client closes; the server answers with a close frame of its own.
    stream.close(None).await.unwrap();
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
        .await
        .expect("an answer to the close");
    assert!(matches!(reply, Some(Ok(Message::Close(_)))), "{reply:?}");

    let (mut stream, _) = open().await.unwrap();
    let huge = format!(
        r#"{{"op":"subscribe","channels":["{}"]}}"#,
        "x".repeat(64 * 1024)
    );
    let _ = stream.send(Message::Text(huge.into())).await;
    let closed = close_code(&mut stream).await;
    assert_eq!(closed, Some(CloseCode::Size));

    // A text frame that is not UTF-8 closes the session with 1007.
    let (mut stream, _) = open().await.unwrap();
    let frame = Frame::message(vec![0x7b, 0xff, 0xfe, 0x7d], OpCode::Data(Data::Text), true);
    stream.send(Message::Frame(frame)).await.unwrap();
    let closed = close_code(&mut stream).await;
    assert_eq!(closed, Some(CloseCode::Invalid));
}

/// The code of the close frame that ends the session (within 10 s), if any.
async fn close_code<S>(
    stream: &mut S,
) -> Option<tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode>
where
    S: futures::Stream<
            Item = Result<
                tokio_tungstenite::tungstenite::Message,
                tokio_tungstenite::tungstenite::Error,
            >,
        > + Unpin,
{
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match stream.next().await {
                Some(Ok(Message::Close(Some(f)))) => return Some(f.code),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .expect("the session ends")
}

#[tokio::test]
async fn an_account_may_hold_only_so_many_websocket_sessions() {
    let app = spawn_app().await;
    let url = app.base.replacen("http://", "ws://", 1) + "/v1/ws";
    let with_query = format!("{url}?token={}", token(SELLER, &["trade"]));
    let mut held = Vec::new();
    for _ in 0..api::stream::SESSIONS_PER_ACCOUNT {
        held.push(
            tokio_tungstenite::connect_async(with_query.clone())
                .await
                .unwrap(),
        );
    }
    let refused = tokio_tungstenite::connect_async(with_query.clone()).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 429)
        }
        other => panic!("expected a 429, got {other:?}"),
    }
    // Another account is not affected, and a closed session frees its slot.
    let other = format!("{url}?token={}", token(BUYER, &["trade"]));
    assert!(tokio_tungstenite::connect_async(other).await.is_ok());
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        if let Ok(s) = tokio_tungstenite::connect_async(with_query.clone()).await {
            again = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "the freed slot is usable again");
}

#[tokio::test]
async fn the_orders_channel_needs_the_trade_scope() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let app = spawn_app().await;
    let url = app.base.replacen("http://", "ws://", 1) + "/v1/ws";
    let operator = format!("{url}?token={}", token(SELLER, &["operate", "audit"]));
    let (mut stream, _) = tokio_tungstenite::connect_async(operator).await.unwrap();
    let op = r#"{"op":"subscribe","channels":["orders"]}"#;
    stream.send(Message::Text(op.into())).await.unwrap();
    let answer = stream.next().await.unwrap().unwrap();
    let answer: Value = serde_json::from_str(answer.to_text().unwrap()).unwrap();
    assert_eq!(answer["code"], "forbidden", "{answer}");
    // Market data needs no scope beyond a valid token.
    let op = r#"{"op":"subscribe","channels":["trades:BTC-USD"]}"#;
    stream.send(Message::Text(op.into())).await.unwrap();
    let answer = stream.next().await.unwrap().unwrap();
    let answer: Value = serde_json::from_str(answer.to_text().unwrap()).unwrap();
    assert_eq!(answer["type"], "subscribed", "{answer}");
}

#[tokio::test]
async fn a_websocket_session_ends_when_its_token_expires() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let app = spawn_app().await;
    let url = app.base.replacen("http://", "ws://", 1) + "/v1/ws";
    // Expired 58 s ago: still inside the 60 s leeway for about two seconds.
    let mut claims = claims(BUYER, &["trade"]);
    claims.exp = jsonwebtoken::get_current_timestamp() - 58;
    claims.nbf = claims.exp - 60;
    let nearly = api::auth::mint_hs256(SECRET, &claims).unwrap();
    let (mut stream, _) = tokio_tungstenite::connect_async(format!("{url}?token={nearly}"))
        .await
        .unwrap();
    let op = r#"{"op":"subscribe","channels":["orders"]}"#;
    stream.send(Message::Text(op.into())).await.unwrap();
    let answer = stream.next().await.unwrap().unwrap();
    let answer: Value = serde_json::from_str(answer.to_text().unwrap()).unwrap();
    assert_eq!(answer["type"], "subscribed", "{answer}");
    let opened = std::time::Instant::now();
    let (mut notice, mut code) = (None, None);
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(Ok(m)) = stream.next().await {
            match m {
                Message::Text(t) => notice = Some(serde_json::from_str::<Value>(&t).unwrap()),
                Message::Close(f) => {
                    code = f.map(|f| f.code);
                    break;
                }
                _ => {}
            }
        }
    })
    .await
    .expect("the session ends once the token has expired");
    assert!(opened.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(notice.expect("a notice")["code"], "token_expired");
    assert_eq!(code, Some(CloseCode::Policy));
    // The same token no longer opens a session at all.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let again = tokio_tungstenite::connect_async(format!("{url}?token={nearly}")).await;
    match again {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 401)
        }
        other => panic!("expected a 401, got {other:?}"),
    }
}

#[tokio::test]
async fn a_websocket_refuses_two_different_tokens_and_ops_not_in_the_documented_form() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app().await;
    let url = app.base.replacen("http://", "ws://", 1) + "/v1/ws";
    let mut req = format!("{url}?token={}", token(BUYER, &["trade"]))
        .into_client_request()
        .unwrap();
    let seller = format!("Bearer {}", token(SELLER, &["trade"]));
    req.headers_mut()
        .insert("authorization", seller.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status().as_u16(), 400)
        }
        other => panic!("expected a 400, got {other:?}"),
    }

    let with_query = format!("{url}?token={}", token(SELLER, &["trade"]));
    let (mut stream, _) = tokio_tungstenite::connect_async(with_query).await.unwrap();
    for (op, wanted) in [
        (r#"["subscribe",["orders"]]"#, "JSON object"),
        (r#"[1,2]"#, "JSON object"),
        (r#"{"op":"subscribe","channels":[]}"#, "no channels"),
    ] {
        stream.send(Message::Text(op.into())).await.unwrap();
        let answer = stream.next().await.unwrap().unwrap();
        let answer: Value = serde_json::from_str(answer.to_text().unwrap()).unwrap();
        assert_eq!(answer["code"], "invalid_op", "{op}: {answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains(wanted),
            "{op}: {answer}"
        );
    }
}
