//! A checkpointing trainer. The "model" is one number updated by a
//! deterministic step, so a run resumed from a checkpoint ends with exactly
//! the value of an uninterrupted run. Checkpoints go to `/ckpt/state` on
//! the volume and are committed at once, so a kill -9 of the host loses at
//! most the steps since the last checkpoint.
wit_bindgen::generate!({ world: "trainer", path: "wit" });

use vessel_sdk::Volume;

const MOUNT: &str = "/ckpt";
const STATE: &str = "/ckpt/state";

struct Trainer;

fn step(value: u64, step: u32) -> u64 {
    (value.wrapping_mul(31).wrapping_add(u64::from(step))) % 1_000_003
}

fn resume() -> (u32, u64) {
    let Ok(text) = std::fs::read_to_string(STATE) else {
        return (0, 1);
    };
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(s)), Some(Ok(v))) => (u32::try_from(s).unwrap_or(u32::MAX), v),
        _ => panic!("corrupt checkpoint {text:?}"),
    }
}

impl Guest for Trainer {
    fn train(steps: u32, checkpoint_every: Option<u32>, step_ms: Option<u64>) -> u64 {
        let volume = Volume::mounted(MOUNT).unwrap_or_else(|e| panic!("mount: {e}"));
        let every = checkpoint_every.unwrap_or(10).max(1);
        let (mut done, mut value) = resume();
        if done == 0 {
            println!("starting from scratch");
        } else {
            println!("resumed from step {done}");
        }
        while done < steps {
            value = step(value, done);
            done += 1;
            if let Some(ms) = step_ms {
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
            if done % every == 0 || done == steps {
                // Write a new file and rename it over the old one: a
                // checkpoint is whole or absent, never half-written.
                let tmp = format!("{STATE}.tmp");
                std::fs::write(&tmp, format!("{done} {value}"))
                    .unwrap_or_else(|e| panic!("checkpoint: {e}"));
                std::fs::rename(&tmp, STATE).unwrap_or_else(|e| panic!("checkpoint: {e}"));
                volume.commit().unwrap_or_else(|e| panic!("commit: {e}"));
                println!("checkpoint at step {done}");
            }
        }
        println!("done: step {done} value {value}");
        value
    }
}

export!(Trainer);
