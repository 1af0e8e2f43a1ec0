// The two load scenarios of the challenge (shared/spec/challenge.md), written from its
// description: ramping users posting payments, processor faults at fixed offsets, an
// audit every 10 s over a trailing window, and the end-of-test score.
//
// Environment:
//   SCENARIO        preview | final                                  (preview)
//   BACKEND_URL     the backend under test                           (http://127.0.0.1:9999)
//   DEFAULT_URL     default processor, admin endpoints used          (http://127.0.0.1:8001)
//   FALLBACK_URL    fallback processor                               (http://127.0.0.1:8002)
//   ADMIN_TOKEN     X-Rinha-Token of both processors                 (123)
//   COMPRESS        divide every offset and duration by this (>= 1)  (1)
//   RESULT_JSON     where handleSummary writes the scored result     (result-k6.json)
//
// The scored result is computed in teardown (HTTP calls) and handed to handleSummary
// through custom metrics, because handleSummary cannot make requests.
import http from 'k6/http';
import { sleep } from 'k6';
import { Counter, Gauge } from 'k6/metrics';

const SCENARIOS = {
  preview: {
    users: 550,
    ramp_s: 60,
    amount: 19.9,
    fees: { default: 0.05, fallback: 0.15 },
    // Audit window [now - 15 s, now - lag]; the backend is given `lag` to catch up.
    audit_lag_ms: 1500,
    // preview: |Δdefault + Δfallback|; final: |Δdefault| + |Δfallback|.
    audit_sum_first: true,
    // Money at the end: the backend's own summary over the last 70 s.
    money_from: 'backend',
    money_window_s: 70,
    // [offset s, default delay ms, default failing, fallback delay ms, fallback failing]
    faults: [
      [1, 0, false, 0, false],
      [10, 100, false, 0, false],
      [20, 100, true, 0, false],
      [30, 2000, true, 1000, true],
      [40, 20, false, 20, false],
      [50, 0, false, 5000, false],
    ],
  },
  final: {
    users: 603,
    ramp_s: 300,
    amount: 20.05,
    fees: { default: 0.07, fallback: 0.1 },
    audit_lag_ms: 2000,
    audit_sum_first: false,
    // Money at the end: the processors' admin summaries over the last 360 s.
    money_from: 'processors',
    money_window_s: 360,
    faults: [
      [1, 0, false, 0, false],
      [30, 1000, false, 0, false],
      [60, 500, false, 0, false],
      [90, 2000, true, 1000, false],
      [120, 5000, true, 5, false],
      [150, 0, false, 5, true],
      [180, 100, false, 5, false],
      [210, 50, false, 0, false],
      [240, 103, false, 10, false],
      [270, 2000, false, 0, false],
    ],
  },
};

const NAME = __ENV.SCENARIO || 'preview';
const S = SCENARIOS[NAME];
if (!S) {
  throw new Error(`SCENARIO must be preview or final, got ${NAME}`);
}
const COMPRESS = Number(__ENV.COMPRESS || '1');
if (!(COMPRESS >= 1)) {
  throw new Error(`COMPRESS must be a number >= 1, got ${__ENV.COMPRESS}`);
}
const BACKEND = __ENV.BACKEND_URL || 'http://127.0.0.1:9999';
const PROCESSORS = {
  default: __ENV.DEFAULT_URL || 'http://127.0.0.1:8001',
  fallback: __ENV.FALLBACK_URL || 'http://127.0.0.1:8002',
};
const ADMIN = {
  headers: { 'X-Rinha-Token': __ENV.ADMIN_TOKEN || '123', 'Content-Type': 'application/json' },
  tags: { kind: 'admin' },
};
const RESULT_JSON = __ENV.RESULT_JSON || 'result-k6.json';

// Seconds on the (possibly compressed) timeline, as k6 duration strings.
const scaled = (s) => `${Math.max(1, Math.round((s * 1000) / COMPRESS))}ms`;
const TEST_MS = (S.ramp_s * 1000) / COMPRESS;
const AUDIT_EVERY_S = 10;
// The audit window's start; kept at 15 s when compressed (it is a tolerance, not a phase).
const AUDIT_BACK_MS = 15000;
// Every request a user sends gives up after this long (the official timeout).
const REQUEST_TIMEOUT = '1500ms';

const accepted = new Counter('payments_accepted');
const rejected = new Counter('payments_rejected');
const inconsistencies = new Counter('audit_inconsistencies');
const audits = new Counter('audits');
// Backend summaries that did not answer 200 (audits and the end of the test).
const summaryFailures = new Counter('summary_failures');
// Filled in teardown: the end-of-test figures (see handleSummary).
const end = {};
for (const k of [
  'money_default_requests', 'money_default_amount', 'money_default_fee',
  'money_fallback_requests', 'money_fallback_amount', 'money_fallback_fee',
  'final_backend_default_requests', 'final_backend_fallback_requests',
  'final_processor_default_requests', 'final_processor_fallback_requests',
  'final_backend_default_amount', 'final_backend_fallback_amount',
  'final_processor_default_amount', 'final_processor_fallback_amount',
]) {
  end[k] = new Gauge(k);
}

const scenarios = {
  payments: {
    executor: 'ramping-vus',
    startVUs: 1,
    stages: [{ duration: scaled(S.ramp_s), target: S.users }],
    gracefulRampDown: '0s',
    gracefulStop: '2s',
    exec: 'pay',
  },
  audit: {
    executor: 'constant-arrival-rate',
    rate: 1,
    timeUnit: scaled(AUDIT_EVERY_S),
    // From the first audit at 10 s to the end of the load.
    duration: scaled(S.ramp_s - AUDIT_EVERY_S),
    startTime: scaled(AUDIT_EVERY_S),
    preAllocatedVUs: 2,
    exec: 'audit',
  },
};
S.faults.forEach((f, i) => {
  scenarios[`fault_${i}`] = {
    executor: 'per-vu-iterations',
    vus: 1,
    iterations: 1,
    startTime: scaled(f[0]),
    exec: 'fault',
    env: { FAULT: String(i) },
  };
});

export const options = {
  scenarios,
  summaryTrendStats: ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)'],
  // Each user keeps its connection (k6's default); the audits and admin calls use their own.
  noConnectionReuse: false,
  discardResponseBodies: false,
  setupTimeout: '30s',
  teardownTimeout: '60s',
};

function uuid4() {
  const h = '0123456789abcdef';
  let s = '';
  for (let i = 0; i < 36; i++) {
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      s += '-';
    } else if (i === 14) {
      s += '4';
    } else if (i === 19) {
      s += h[8 + Math.floor(Math.random() * 4)];
    } else {
      s += h[Math.floor(Math.random() * 16)];
    }
  }
  return s;
}

function iso(ms) {
  return new Date(ms).toISOString();
}

function mustOk(res, what) {
  if (res.status < 200 || res.status > 299) {
    throw new Error(`${what}: HTTP ${res.status} ${res.body}`);
  }
  return res;
}

function backendSummary(fromMs, toMs) {
  const q = fromMs === undefined ? '' : `?from=${iso(fromMs)}&to=${iso(toMs)}`;
  const r = http.get(`${BACKEND}/payments-summary${q}`, { tags: { kind: 'summary' } });
  if (r.status !== 200) {
    summaryFailures.add(1);
    console.warn(`summary ${q}: HTTP ${r.status} ${r.body}`);
    return null;
  }
  const j = r.json();
  return {
    default: { requests: j.default.totalRequests, amount: j.default.totalAmount },
    fallback: { requests: j.fallback.totalRequests, amount: j.fallback.totalAmount },
  };
}

function processorSummaries(fromMs, toMs) {
  const q = fromMs === undefined ? '' : `?from=${iso(fromMs)}&to=${iso(toMs)}`;
  const out = {};
  for (const p of ['default', 'fallback']) {
    const j = mustOk(http.get(`${PROCESSORS[p]}/admin/payments-summary${q}`, ADMIN), `${p} summary`).json();
    out[p] = { requests: j.totalRequests, amount: j.totalAmount, fee: j.totalFee };
  }
  return out;
}

export function setup() {
  mustOk(http.post(`${BACKEND}/purge-payments`, null, { tags: { kind: 'admin' } }), 'backend purge');
  for (const p of ['default', 'fallback']) {
    mustOk(http.post(`${PROCESSORS[p]}/admin/purge-payments`, null, ADMIN), `${p} purge`);
  }
  // The runner lines up its own samples with this instant: the scenarios start now.
  console.log(`t0_ms=${Date.now()}`);
  return {};
}

export function pay() {
  const body = JSON.stringify({ correlationId: uuid4(), amount: S.amount });
  const r = http.post(`${BACKEND}/payments`, body, {
    headers: { 'Content-Type': 'application/json' },
    timeout: REQUEST_TIMEOUT,
    tags: { kind: 'payment' },
  });
  if (r.status >= 200 && r.status <= 299) {
    accepted.add(1);
  } else {
    rejected.add(1);
  }
  sleep(1);
}

export function fault() {
  const [, dDelay, dFail, fDelay, fFail] = S.faults[Number(__ENV.FAULT)];
  const set = { default: [dDelay, dFail], fallback: [fDelay, fFail] };
  for (const p of ['default', 'fallback']) {
    const [delay, failure] = set[p];
    mustOk(http.put(`${PROCESSORS[p]}/admin/configurations/delay`, JSON.stringify({ delay }), ADMIN), `${p} delay`);
    mustOk(http.put(`${PROCESSORS[p]}/admin/configurations/failure`, JSON.stringify({ failure }), ADMIN), `${p} failure`);
  }
  console.log(`fault ${__ENV.FAULT} at_ms=${Date.now()}`);
}

export function audit() {
  const now = Date.now();
  const from = now - AUDIT_BACK_MS;
  const to = now - S.audit_lag_ms;
  const b = backendSummary(from, to);
  const p = processorSummaries(from, to);
  audits.add(1);
  if (b === null) {
    // An unanswered summary cannot be compared; the official test counts it as a failed
    // check, not as inconsistent payments, so it is only logged.
    console.warn(`audit at_ms=${now}: backend summary failed`);
    return;
  }
  const dd = b.default.requests - p.default.requests;
  const df = b.fallback.requests - p.fallback.requests;
  const n = S.audit_sum_first ? Math.abs(dd + df) : Math.abs(dd) + Math.abs(df);
  if (n > 0) {
    inconsistencies.add(n);
    console.warn(`audit at_ms=${now}: ${n} inconsistent (Δdefault ${dd}, Δfallback ${df})`);
  }
}

// The end-of-test summary is asked up to this many times: one failed answer would zero the
// whole score, which would hide every other figure of the run. Each failure is counted in
// `summary_failures` and reported.
const END_SUMMARY_TRIES = 3;

function backendSummaryRetried(fromMs, toMs) {
  for (let i = 0; i < END_SUMMARY_TRIES; i++) {
    const b = backendSummary(fromMs, toMs);
    if (b !== null) {
      return b;
    }
    sleep(0.1);
  }
  return null;
}

export function teardown() {
  const now = Date.now();
  const from = now - S.money_window_s * 1000;
  let money;
  if (S.money_from === 'backend') {
    const b = backendSummaryRetried(from, now) || {
      default: { requests: 0, amount: 0 },
      fallback: { requests: 0, amount: 0 },
    };
    money = {
      default: { ...b.default, fee: b.default.amount * S.fees.default },
      fallback: { ...b.fallback, fee: b.fallback.amount * S.fees.fallback },
    };
  } else {
    money = processorSummaries(from, now);
  }
  for (const p of ['default', 'fallback']) {
    end[`money_${p}_requests`].add(money[p].requests);
    end[`money_${p}_amount`].add(money[p].amount);
    end[`money_${p}_fee`].add(money[p].fee);
  }
  // Everything either side recorded, at one instant: how far the backend trails.
  const b = backendSummaryRetried();
  const p = processorSummaries();
  for (const k of ['default', 'fallback']) {
    end[`final_backend_${k}_requests`].add(b ? b[k].requests : -1);
    end[`final_backend_${k}_amount`].add(b ? b[k].amount : -1);
    end[`final_processor_${k}_requests`].add(p[k].requests);
    end[`final_processor_${k}_amount`].add(p[k].amount);
  }
}

function metric(data, name, stat) {
  const m = data.metrics[name];
  return m && m.values[stat] !== undefined ? m.values[stat] : 0;
}

export function handleSummary(data) {
  const g = (k) => metric(data, k, 'value');
  const round2 = (x) => Math.round(x * 100) / 100;
  const p99 = metric(data, 'http_req_duration', 'p(99)');
  const amount = g('money_default_amount') + g('money_fallback_amount');
  const fees = g('money_default_fee') + g('money_fallback_fee');
  const net = amount - fees;
  const bonus = Math.max(round2((11 - p99) * 0.02), 0);
  const inc = metric(data, 'audit_inconsistencies', 'count');
  const fine = inc > 0 ? 0.35 : 0;
  const score = net + net * bonus - net * fine;
  const acceptedN = metric(data, 'payments_accepted', 'count');
  const counted = g('money_default_requests') + g('money_fallback_requests');
  const backendAll = g('final_backend_default_requests') + g('final_backend_fallback_requests');
  const procAll = g('final_processor_default_requests') + g('final_processor_fallback_requests');
  const result = {
    scenario: NAME,
    compress: COMPRESS,
    score: round2(score),
    net: round2(net),
    bonus,
    fine,
    p99_ms: p99,
    http_req_duration_ms: data.metrics.http_req_duration ? data.metrics.http_req_duration.values : {},
    inconsistencies: inc,
    audits: metric(data, 'audits', 'count'),
    summary_failures: metric(data, 'summary_failures', 'count'),
    counted_from: S.money_from,
    counted_window_s: S.money_window_s,
    default: {
      requests: g('money_default_requests'),
      amount: round2(g('money_default_amount')),
      fee: round2(g('money_default_fee')),
    },
    fallback: {
      requests: g('money_fallback_requests'),
      amount: round2(g('money_fallback_amount')),
      fee: round2(g('money_fallback_fee')),
    },
    payments_accepted: acceptedN,
    payments_rejected: metric(data, 'payments_rejected', 'count'),
    payments_counted: counted,
    net_per_accepted_payment: acceptedN > 0 ? net / acceptedN : 0,
    // Positive: the processors hold payments the backend has not recorded yet.
    lag_payments: procAll - backendAll,
    end_totals: {
      backend: { default: g('final_backend_default_requests'), fallback: g('final_backend_fallback_requests') },
      processors: { default: g('final_processor_default_requests'), fallback: g('final_processor_fallback_requests') },
    },
    // The backend recorded more than it accepted: disqualified.
    over_recorded: backendAll > acceptedN,
    test_ms: TEST_MS,
    // [offset s (before COMPRESS), default delay ms, default failing, fallback delay ms, fallback failing]
    faults: S.faults,
  };
  return {
    [RESULT_JSON]: JSON.stringify(result, null, 2),
    stdout: `\n${NAME}: score ${result.score}  net ${result.net}  p99 ${p99.toFixed(2)} ms  ` +
      `inconsistencies ${inc}  default ${result.default.requests}  fallback ${result.fallback.requests}  ` +
      `accepted ${acceptedN}  lag ${result.lag_payments}` +
      `${result.summary_failures ? `  SUMMARY FAILURES ${result.summary_failures}` : ''}\n`,
  };
}
