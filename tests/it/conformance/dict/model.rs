//! The model-based property test of the dict backends: random operation
//! sequences run against each backend and against a sorted map with expiry,
//! which must agree.

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Put {
        key: &'static str,
        value: Vec<u8>,
        if_absent: bool,
        cas: Option<bool>,
        ttl: Option<u64>,
    },
    Get(&'static str),
    Pop(&'static str),
    Contains(&'static str),
    Len,
    Update(Vec<(&'static str, Vec<u8>)>),
    Incr(&'static str, i64),
    Scan {
        prefix: &'static str,
        limit: u32,
        values: bool,
    },
    Clear,
    Advance(u64),
    Sweep,
}

const KEYS: &[&str] = &["a", "ab", "abc", "b", "ba"];
const IDLE: u64 = 1_000;

fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(KEYS)
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (-3i64..3).prop_map(|n| n.to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..6),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (key(), value(), any::<bool>(), prop::option::of(any::<bool>()), prop::option::of(1u64..2_000))
            .prop_map(|(key, value, if_absent, cas, ttl)| Op::Put { key, value, if_absent, cas, ttl }),
        3 => key().prop_map(Op::Get),
        1 => key().prop_map(Op::Pop),
        1 => key().prop_map(Op::Contains),
        1 => Just(Op::Len),
        1 => prop::collection::vec((key(), value()), 0..4).prop_map(Op::Update),
        2 => (key(), prop_oneof![-3i64..3, Just(i64::MAX), Just(i64::MIN)]).prop_map(|(k, d)| Op::Incr(k, d)),
        1 => (prop::sample::select(&["", "a", "ab", "b", "c"][..]), 1u32..4, any::<bool>())
            .prop_map(|(prefix, limit, values)| Op::Scan { prefix, limit, values }),
        1 => Just(Op::Clear),
        3 => prop_oneof![0u64..40, 0u64..1_200].prop_map(Op::Advance),
        1 => Just(Op::Sweep),
    ]
}

#[derive(Debug, Clone)]
struct MEntry {
    value: Vec<u8>,
    version: u64,
    access: u64,
    deadline: u64,
}

/// The specification: a sorted map with explicit access times and
/// deadlines. Versions are compared by order, not value (backends may
/// count differently, e.g. across dicts).
#[derive(Debug, Default)]
struct Model {
    map: BTreeMap<String, MEntry>,
    now: u64,
}

impl Model {
    fn expired(&self, e: &MEntry) -> bool {
        if e.deadline != 0 {
            self.now >= e.deadline
        } else {
            self.now >= e.access + IDLE + IDLE / 32
        }
    }
    fn live(&self, key: &str) -> Option<MEntry> {
        self.map.get(key).filter(|e| !self.expired(e)).cloned()
    }
    fn read(&mut self, key: &str) -> Option<MEntry> {
        let e = self.live(key)?;
        let now = self.now;
        if e.deadline == 0
            && now - e.access >= IDLE / 32
            && let Some(m) = self.map.get_mut(key)
        {
            m.access = now;
        }
        Some(e)
    }
    fn write(&mut self, key: &str, value: Vec<u8>, deadline: u64, version: u64) {
        self.map.insert(
            key.into(),
            MEntry {
                value,
                version,
                access: self.now,
                deadline,
            },
        );
    }
    fn purge(&mut self) -> usize {
        let before = self.map.len();
        let now = self.now;
        self.map.retain(|_, e| {
            if e.deadline != 0 {
                now < e.deadline
            } else {
                now < e.access + IDLE + IDLE / 32
            }
        });
        before - self.map.len()
    }
}

fn run_ops(
    s: &dyn DictStore,
    clock: &vessel_host::storage::clock::ManualClock,
    dict: &str,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    s.create(dict).unwrap();
    let mut m = Model {
        now: clock_now(clock),
        ..Model::default()
    };
    let mut last_version = 0u64;
    for op in ops {
        match op {
            Op::Put {
                key,
                value,
                if_absent,
                cas,
                ttl,
            } => {
                let cur = m.live(key).map(|e| e.version);
                let if_version = cas.map(|good| {
                    let v = cur.unwrap_or(0);
                    if good { v } else { v + 1_000_000 }
                });
                let got = s.put(
                    dict,
                    key,
                    &value,
                    &PutOptions {
                        if_absent,
                        if_version,
                        ttl_ms: ttl,
                    },
                );
                if if_absent && cur.is_some() {
                    prop_assert_eq!(got.unwrap(), PutOutcome::Skipped);
                } else if if_version.is_some() && if_version != cur {
                    prop_assert!(
                        matches!(got, Err(DictError::VersionMismatch { .. })),
                        "{:?}",
                        got
                    );
                } else {
                    let PutOutcome::Written { version } = got.unwrap() else {
                        return Err(TestCaseError::fail("skipped"));
                    };
                    let deadline = ttl.map(|t| m.now + t).unwrap_or(0);
                    m.write(key, value, deadline, fresh(&mut last_version, version)?);
                }
            }
            Op::Get(key) => {
                let want = m.read(key).map(|e| DictEntry {
                    value: e.value,
                    version: e.version,
                });
                prop_assert_eq!(s.get(dict, key).unwrap(), want);
            }
            Op::Contains(key) => {
                let want = m.read(key).is_some();
                prop_assert_eq!(s.contains(dict, key).unwrap(), want);
            }
            Op::Pop(key) => {
                let want = m.live(key).map(|e| DictEntry {
                    value: e.value,
                    version: e.version,
                });
                m.map.remove(key);
                prop_assert_eq!(s.pop(dict, key).unwrap(), want);
            }
            Op::Len => {
                m.purge();
                prop_assert_eq!(s.len(dict).unwrap(), m.map.len() as u64);
            }
            Op::Update(pairs) => {
                let owned: Vec<(String, Vec<u8>)> = pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect();
                s.update(dict, &owned).unwrap();
                for (k, v) in pairs {
                    let version = s.get(dict, k).unwrap().map(|e| e.version).unwrap_or(0);
                    m.write(k, v, 0, version);
                    // Reading refreshed nothing: the write just happened.
                }
                if let Some(v) = m.map.values().map(|e| e.version).max() {
                    last_version = last_version.max(v);
                }
            }
            Op::Incr(key, delta) => {
                let cur = m.live(key);
                let got = s.increment(dict, key, delta);
                let base = match &cur {
                    None => Some(0),
                    Some(e) => std::str::from_utf8(&e.value)
                        .ok()
                        .and_then(|t| t.parse::<i64>().ok()),
                };
                match base {
                    None => prop_assert!(
                        matches!(got, Err(DictError::NotACounter { .. })),
                        "{:?}",
                        got
                    ),
                    Some(b) => match b.checked_add(delta) {
                        None => prop_assert!(
                            matches!(got, Err(DictError::Overflow { .. })),
                            "{:?}",
                            got
                        ),
                        Some(n) => {
                            prop_assert_eq!(got.unwrap(), n);
                            let version = s.get(dict, key).unwrap().map(|e| e.version).unwrap_or(0);
                            let deadline = cur.map(|e| e.deadline).unwrap_or(0);
                            m.write(
                                key,
                                n.to_string().into_bytes(),
                                deadline,
                                fresh(&mut last_version, version)?,
                            );
                        }
                    },
                }
            }
            Op::Scan {
                prefix,
                limit,
                values,
            } => {
                let mut got = Vec::new();
                let mut cursor: Option<String> = None;
                loop {
                    let page = s
                        .scan(dict, prefix, cursor.as_deref(), limit, values)
                        .unwrap();
                    prop_assert!(page.items.len() <= limit as usize);
                    got.extend(page.items);
                    match page.cursor {
                        Some(c) => cursor = Some(c),
                        None => break,
                    }
                }
                let want: Vec<ScanItem> = m
                    .map
                    .iter()
                    .filter(|(k, e)| k.starts_with(prefix) && !m.expired(e))
                    .map(|(k, e)| ScanItem {
                        key: k.clone(),
                        value: values.then(|| e.value.clone()),
                        version: e.version,
                        size: e.value.len() as u64,
                    })
                    .collect();
                prop_assert_eq!(got, want);
            }
            Op::Clear => {
                s.clear(dict).unwrap();
                m.map.clear();
            }
            Op::Advance(ms) => {
                clock.advance_ms(ms);
                m.now += ms;
            }
            Op::Sweep => {
                m.purge();
                s.sweep_expired(usize::MAX).unwrap();
                prop_assert_eq!(s.len(dict).unwrap(), m.map.len() as u64);
            }
        }
    }
    Ok(())
}

/// Checks that `v` is greater than every version seen before.
fn fresh(last: &mut u64, v: u64) -> Result<u64, TestCaseError> {
    prop_assert!(v > *last, "versions grow: {} after {}", v, *last);
    *last = v;
    Ok(v)
}

fn clock_now(c: &vessel_host::storage::clock::ManualClock) -> u64 {
    use vessel_host::storage::clock::Clock;
    c.now_ms()
}

pub(super) fn behaves_like_a_sorted_map_with_expiry(make: &Make) {
    let b = make(Setup {
        idle_ms: IDLE,
        ..Setup::default()
    });
    let cases = if b.kind == crate::conformance::Kind::Remote {
        24
    } else {
        48
    };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let n = std::sync::atomic::AtomicU64::new(0);
    runner
        .run(&prop::collection::vec(op(), 1..50), |ops| {
            let dict = format!("m{}", n.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
            run_ops(&*b.dicts, &b.clock, &dict, ops)
        })
        .unwrap();
}
