//! Determinism and recovery: the same commands give the same events and state.

use pipeline::*;
use proptest::prelude::*;

use super::invariants::config;
use super::props::{ops, resolve};

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn replaying_the_same_commands_yields_the_same_events_and_state(ops in ops()) {
        let mut first = Engine::new(config());
        let mut log = Vec::new();
        let mut results = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let cmd = resolve(&first, op);
            results.push(first.apply(cmd.clone(), i as u64));
            log.push(cmd);
        }
        let mut second = Engine::new(config());
        let replayed: Vec<_> = log.iter().enumerate().map(|(i, c)| second.apply(c.clone(), i as u64)).collect();
        prop_assert_eq!(results, replayed);
        prop_assert_eq!(first.snapshot(), second.snapshot());
    }

    #[test]
    fn a_restored_snapshot_continues_exactly_like_the_original(ops in ops(), split in 0usize..200) {
        let mut original = Engine::new(config());
        let split = split.min(ops.len());
        for (i, op) in ops[..split].iter().enumerate() {
            let _ = original.apply(resolve(&original, op), i as u64);
        }
        let state = original.snapshot();
        let json = serde_json::to_string(&state).unwrap();
        let mut restored = Engine::from_state(config(), serde_json::from_str(&json).unwrap()).unwrap();
        prop_assert_eq!(&restored.snapshot(), &state);
        for (i, op) in ops[split..].iter().enumerate() {
            let cmd = resolve(&original, op);
            prop_assert_eq!(original.apply(cmd.clone(), i as u64), restored.apply(cmd, i as u64));
        }
        prop_assert_eq!(original.snapshot(), restored.snapshot());
    }
}
