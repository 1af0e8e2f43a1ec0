//! The settlement table tests: every row of `docs/payment-life.md`'s table of answers,
//! and its section on uncertain payments.

use super::*;
use crate::upstream::api::classify;
use Processor::{Default as D, Fallback as F};

/// `UNCERTAIN_SETTLE_MS` in these tests.
const SETTLE: Duration = Duration::from_secs(10);
/// Our `requestedAt` on the default, and on the fallback.
const T: Micros = 1_752_150_896_123_456;
const TF: Micros = 1_752_150_897_000_000;
/// Someone else's `requestedAt` for the same payment.
const THEIRS: Micros = 1_752_150_895_000_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The answers' cells of the table in `docs/payment-life.md`, and its section on
/// uncertain payments: every row below names one of them.
const DOC: &str = include_str!("../../../docs/payment-life.md");
const UNCERTAIN: &str = "Uncertain payments";

fn doc_rows() -> Vec<&'static str> {
    let mut rows: Vec<&str> = DOC
        .lines()
        .skip_while(|l| !l.starts_with("| answer |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split('|').nth(1).unwrap_or("").trim())
        .collect();
    assert!(DOC.contains(&format!("## {UNCERTAIN}")));
    rows.push(UNCERTAIN);
    rows
}

struct Row {
    /// The row of the doc's table (its answer cell), or its section, it covers.
    doc: &'static str,
    case: &'static str,
    facts: Facts,
    on: Processor,
    answer: Answer,
    /// The clock, as time since the base instant.
    now: Duration,
    next: Next,
}

fn queued(requested_at: [Option<Micros>; 2]) -> Facts {
    Facts {
        stage: Stage::Queued,
        requested_at,
    }
}

/// Uncertain on the default since `since` after the base instant, sent there at `T`.
fn uncertain(base: Instant, since: Duration) -> Facts {
    Facts {
        stage: uncertain_since(base, since),
        requested_at: [Some(T), None],
    }
}

fn uncertain_since(base: Instant, since: Duration) -> Stage {
    Stage::Uncertain {
        processor: D,
        since: base + since,
    }
}

fn posted(outcome: PostOutcome, requested_at: Micros, first: bool) -> Answer {
    Answer::Posted {
        outcome,
        sent: Sent {
            requested_at,
            first,
        },
    }
}

fn looked(lookup: Lookup, asked: Asked) -> Answer {
    Answer::Looked { lookup, asked }
}

fn found(requested_at: Micros) -> Lookup {
    Lookup::Found {
        requested_at,
        cents: Some(1990),
    }
}

fn then(stage: Stage, action: Action) -> Next {
    Next {
        stage,
        action,
        resolved: None,
    }
}

fn resolved(stage: Stage, action: Action, r: Resolved) -> Next {
    Next {
        stage,
        action,
        resolved: Some(r),
    }
}

fn record(processor: Processor, requested_at: Micros) -> Action {
    Action::Record {
        processor,
        requested_at,
    }
}

fn rows(base: Instant) -> Vec<Row> {
    use Action::{LookUp, Nothing, PlaceLater, PlaceNow, Send};
    use Asked::{AfterAnswer, BeforeSending};
    use Resolved::{Elsewhere, Freed, Recorded};
    use Stage::Queued;
    let first = [Some(T), None];
    vec![
        Row {
            doc: "200",
            case: "first attempt: recorded with its requestedAt",
            facts: queued(first),
            on: D,
            answer: posted(classify(200), T, true),
            now: ms(0),
            next: then(Queued, record(D, T)),
        },
        Row {
            doc: "200",
            case: "on the fallback after the default refused: the fallback's requestedAt",
            facts: queued([Some(T), Some(TF)]),
            on: F,
            answer: posted(classify(200), TF, true),
            now: ms(0),
            next: then(Queued, record(F, TF)),
        },
        Row {
            doc: "200",
            case: "retry after a 500 there: recorded, not an uncertain one resolved",
            facts: queued(first),
            on: D,
            answer: posted(classify(200), T, false),
            now: ms(0),
            next: then(Queued, record(D, T)),
        },
        Row {
            doc: "422, never sent there before",
            case: "someone else charged it: nothing recorded",
            facts: queued(first),
            on: D,
            answer: posted(classify(422), T, true),
            now: ms(0),
            next: then(Queued, Nothing),
        },
        Row {
            doc: "422, never sent there before",
            case: "on the fallback after the default refused: nothing recorded",
            facts: queued([Some(T), Some(TF)]),
            on: F,
            answer: posted(classify(422), TF, true),
            now: ms(0),
            next: then(Queued, Nothing),
        },
        Row {
            doc: "422, sent there before",
            case: "after a 500 there: pinned there from now, and looked up",
            facts: queued(first),
            on: D,
            answer: posted(classify(422), T, false),
            now: ms(1_000),
            next: then(uncertain_since(base, ms(1_000)), LookUp(AfterAnswer)),
        },
        Row {
            doc: "422, sent there before",
            case: "after a timed-out attempt: still pinned since it, and looked up",
            facts: uncertain(base, ms(0)),
            on: D,
            answer: posted(classify(422), T, false),
            now: ms(2_000),
            next: then(uncertain_since(base, ms(0)), LookUp(AfterAnswer)),
        },
        Row {
            doc: "422, sent there before",
            case: "the lookup finds our requestedAt: recorded",
            facts: uncertain(base, ms(1_000)),
            on: D,
            answer: looked(found(T), AfterAnswer),
            now: ms(1_005),
            next: resolved(uncertain_since(base, ms(1_000)), record(D, T), Recorded),
        },
        Row {
            doc: "422, sent there before",
            case: "the lookup finds another requestedAt: someone else's, nothing recorded",
            facts: uncertain(base, ms(1_000)),
            on: D,
            answer: looked(found(THEIRS), AfterAnswer),
            now: ms(1_005),
            next: resolved(uncertain_since(base, ms(1_000)), Nothing, Elsewhere),
        },
        Row {
            doc: "422, sent there before",
            case: "the lookup times out: still pinned, placed again after the delay",
            facts: uncertain(base, ms(1_000)),
            on: D,
            answer: looked(Lookup::Unknown, AfterAnswer),
            now: ms(3_000),
            next: then(uncertain_since(base, ms(1_000)), PlaceLater),
        },
        Row {
            doc: "422, sent there before",
            case: "the lookup answers 404 (a purge in between) within the settle time: \
                   still pinned, placed again after the delay",
            facts: uncertain(base, ms(1_000)),
            on: D,
            answer: looked(Lookup::NotFound, AfterAnswer),
            now: ms(1_005),
            next: then(uncertain_since(base, ms(1_000)), PlaceLater),
        },
        Row {
            doc: "422, sent there before",
            case: "the lookup answers 404 past the settle time of the timeout before: \
                   freed, placed again at once",
            facts: uncertain(base, ms(0)),
            on: D,
            answer: looked(Lookup::NotFound, AfterAnswer),
            now: ms(12_000),
            next: resolved(Queued, PlaceNow, Freed),
        },
        Row {
            doc: "500, connection refused",
            case: "500: placed again at once",
            facts: queued(first),
            on: D,
            answer: posted(classify(500), T, true),
            now: ms(0),
            next: then(Queued, PlaceNow),
        },
        Row {
            doc: "500, connection refused",
            case: "503: placed again at once",
            facts: queued(first),
            on: D,
            answer: posted(classify(503), T, false),
            now: ms(0),
            next: then(Queued, PlaceNow),
        },
        Row {
            doc: "500, connection refused",
            case: "connection refused: placed again at once",
            facts: queued(first),
            on: D,
            answer: posted(PostOutcome::NotCharged(0), T, true),
            now: ms(0),
            next: then(Queued, PlaceNow),
        },
        Row {
            doc: "429, other 4XX",
            case: "429: placed again after the delay, on either processor",
            facts: queued(first),
            on: D,
            answer: posted(classify(429), T, true),
            now: ms(0),
            next: then(Queued, PlaceLater),
        },
        Row {
            doc: "429, other 4XX",
            case: "400: turned away like a 429",
            facts: queued(first),
            on: D,
            answer: posted(classify(400), T, true),
            now: ms(0),
            next: then(Queued, PlaceLater),
        },
        Row {
            doc: "429, other 4XX",
            case: "404 to the attempt: turned away like a 429",
            facts: queued(first),
            on: D,
            answer: posted(classify(404), T, false),
            now: ms(0),
            next: then(Queued, PlaceLater),
        },
        Row {
            doc: "timeout, lost connection, 502/504",
            case: "timeout: uncertain there from now, same requestedAt, after the delay",
            facts: queued(first),
            on: D,
            answer: posted(PostOutcome::Unknown, T, true),
            now: ms(3_000),
            next: then(uncertain_since(base, ms(3_000)), PlaceLater),
        },
        Row {
            doc: "timeout, lost connection, 502/504",
            case: "502: uncertain like a timeout",
            facts: queued(first),
            on: D,
            answer: posted(classify(502), T, true),
            now: ms(3_000),
            next: then(uncertain_since(base, ms(3_000)), PlaceLater),
        },
        Row {
            doc: "timeout, lost connection, 502/504",
            case: "504 on the fallback: uncertain there",
            facts: queued([Some(T), Some(TF)]),
            on: F,
            answer: posted(classify(504), TF, true),
            now: ms(3_000),
            next: then(
                Stage::Uncertain {
                    processor: F,
                    since: base + ms(3_000),
                },
                PlaceLater,
            ),
        },
        Row {
            doc: "timeout, lost connection, 502/504",
            case: "another timeout while uncertain: uncertain since the last one",
            facts: uncertain(base, ms(0)),
            on: D,
            answer: posted(PostOutcome::Unknown, T, false),
            now: ms(8_000),
            next: then(uncertain_since(base, ms(8_000)), PlaceLater),
        },
        Row {
            doc: UNCERTAIN,
            case: "the lookup before sending finds our requestedAt: recorded",
            facts: uncertain(base, ms(0)),
            on: D,
            answer: looked(found(T), BeforeSending),
            now: ms(500),
            next: resolved(uncertain_since(base, ms(0)), record(D, T), Recorded),
        },
        Row {
            doc: UNCERTAIN,
            case: "the lookup before sending finds another requestedAt: someone else's",
            facts: uncertain(base, ms(0)),
            on: D,
            answer: looked(found(THEIRS), BeforeSending),
            now: ms(500),
            next: resolved(uncertain_since(base, ms(0)), Nothing, Elsewhere),
        },
        Row {
            doc: UNCERTAIN,
            case: "404 before the settle time: still pinned, the same attempt sent again",
            facts: uncertain(base, ms(0)),
            on: D,
            answer: looked(Lookup::NotFound, BeforeSending),
            now: ms(9_999),
            next: then(uncertain_since(base, ms(0)), Send),
        },
        Row {
            doc: UNCERTAIN,
            case: "404 at the settle time: freed, and sent",
            facts: uncertain(base, ms(0)),
            on: D,
            answer: looked(Lookup::NotFound, BeforeSending),
            now: ms(10_000),
            next: resolved(Queued, Send, Freed),
        },
        Row {
            doc: UNCERTAIN,
            case: "404 after the settle time: freed, and sent",
            facts: uncertain(base, ms(0)),
            on: D,
            answer: looked(Lookup::NotFound, BeforeSending),
            now: ms(15_000),
            next: resolved(Queued, Send, Freed),
        },
        Row {
            doc: UNCERTAIN,
            case: "the settle time counts from the last uncertain attempt",
            facts: uncertain(base, ms(8_000)),
            on: D,
            answer: looked(Lookup::NotFound, BeforeSending),
            now: ms(15_000),
            next: then(uncertain_since(base, ms(8_000)), Send),
        },
        Row {
            doc: UNCERTAIN,
            case: "the lookup before sending times out: still pinned, sent again",
            facts: uncertain(base, ms(0)),
            on: D,
            answer: looked(Lookup::Unknown, BeforeSending),
            now: ms(15_000),
            next: then(uncertain_since(base, ms(0)), Send),
        },
        Row {
            doc: UNCERTAIN,
            case: "the retry answers 200: recorded, an uncertain one resolved",
            facts: uncertain(base, ms(0)),
            on: D,
            answer: posted(classify(200), T, false),
            now: ms(600),
            next: resolved(uncertain_since(base, ms(0)), record(D, T), Recorded),
        },
        Row {
            doc: UNCERTAIN,
            case: "the retry answers 500: proves nothing of the earlier attempt, looked up",
            facts: uncertain(base, ms(0)),
            on: D,
            answer: posted(classify(500), T, false),
            now: ms(600),
            next: then(uncertain_since(base, ms(0)), LookUp(AfterAnswer)),
        },
        Row {
            doc: UNCERTAIN,
            case: "the retry answers 429: looked up",
            facts: uncertain(base, ms(0)),
            on: D,
            answer: posted(classify(429), T, false),
            now: ms(600),
            next: then(uncertain_since(base, ms(0)), LookUp(AfterAnswer)),
        },
        Row {
            doc: UNCERTAIN,
            case: "a 404 after a refused retry, within the settle time: after the delay",
            facts: uncertain(base, ms(0)),
            on: D,
            answer: looked(Lookup::NotFound, AfterAnswer),
            now: ms(9_999),
            next: then(uncertain_since(base, ms(0)), PlaceLater),
        },
        Row {
            doc: UNCERTAIN,
            case: "a 404 after a refused retry, past the settle time: freed at once",
            facts: uncertain(base, ms(0)),
            on: D,
            answer: looked(Lookup::NotFound, AfterAnswer),
            now: ms(10_000),
            next: resolved(Queued, PlaceNow, Freed),
        },
    ]
}

#[test]
fn every_row_settles_as_the_doc_says() {
    let base = Instant::now();
    let doc = doc_rows();
    let mut wrong = Vec::new();
    for r in rows(base) {
        assert!(doc.contains(&r.doc), "{}: not a row of the doc", r.doc);
        let got = settle(&r.facts, r.on, r.answer, base + r.now, SETTLE);
        if got != r.next {
            wrong.push(format!(
                "{} / {}:\n  expected {:?}\n  got      {:?}",
                r.doc, r.case, r.next, got
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn every_row_of_the_doc_has_a_case() {
    let rows = rows(Instant::now());
    for d in doc_rows() {
        assert!(rows.iter().any(|r| r.doc == d), "no case for {d:?}");
    }
}

#[test]
fn a_lookup_never_asks_for_another_and_an_answer_never_sends_again() {
    let base = Instant::now();
    for r in rows(base) {
        let a = settle(&r.facts, r.on, r.answer, base + r.now, SETTLE).action;
        let chained = match r.answer {
            Answer::Looked { .. } => matches!(a, Action::LookUp(_)),
            Answer::Posted { .. } => matches!(a, Action::Send),
        };
        assert!(!chained, "{} / {}: {a:?}", r.doc, r.case);
    }
}

#[test]
fn an_uncertain_payment_is_looked_up_before_it_is_sent_again() {
    let base = Instant::now();
    let pinned = uncertain_since(base, ms(0));
    assert_eq!(
        first_action(pinned, D),
        Action::LookUp(Asked::BeforeSending)
    );
    assert_eq!(first_action(pinned, F), Action::Send);
    assert_eq!(first_action(Stage::Queued, D), Action::Send);
    assert_eq!(first_action(Stage::Queued, F), Action::Send);
}

#[test]
fn requested_at_is_fixed_per_processor_at_the_first_attempt() {
    let mut at = [None, None];
    let sent = fix_requested_at(&mut at, D, || T);
    assert_eq!(
        sent,
        Sent {
            requested_at: T,
            first: true
        }
    );
    assert_eq!(at, [Some(T), None]);
    // A retry there, uncertain or not, carries the same one.
    let sent = fix_requested_at(&mut at, D, || unreachable!("fixed already"));
    assert_eq!(
        sent,
        Sent {
            requested_at: T,
            first: false
        }
    );
    // The other processor gets its own.
    let sent = fix_requested_at(&mut at, F, || TF);
    assert_eq!(
        sent,
        Sent {
            requested_at: TF,
            first: true
        }
    );
    assert_eq!(at, [Some(T), Some(TF)]);
}

#[test]
fn a_timed_out_payment_is_retried_only_there_with_the_same_requested_at_until_settled() {
    let base = Instant::now();
    let mut at = [None, None];
    let sent = fix_requested_at(&mut at, D, || T);
    let facts = Facts {
        stage: Stage::Queued,
        requested_at: at,
    };
    let timeout = Answer::Posted {
        outcome: PostOutcome::Unknown,
        sent,
    };
    let n = settle(&facts, D, timeout, base, SETTLE);
    assert_eq!(n, then(uncertain_since(base, ms(0)), Action::PlaceLater));
    // The next attempt there looks up first, then sends the same requestedAt.
    assert_eq!(
        first_action(n.stage, D),
        Action::LookUp(Asked::BeforeSending)
    );
    let facts = Facts {
        stage: n.stage,
        requested_at: at,
    };
    let missing = looked(Lookup::NotFound, Asked::BeforeSending);
    let n = settle(&facts, D, missing, base + ms(5), SETTLE);
    assert_eq!(n, then(facts.stage, Action::Send));
    let sent = fix_requested_at(&mut at, D, || unreachable!("fixed already"));
    let n = settle(
        &facts,
        D,
        posted(classify(200), sent.requested_at, sent.first),
        base + ms(6),
        SETTLE,
    );
    assert_eq!(n, resolved(facts.stage, record(D, T), Resolved::Recorded));
}

#[test]
fn resolved_labels_follow_all() {
    crate::label_table::assert_consistent(&Resolved::ALL, Resolved::index, Resolved::name);
}
