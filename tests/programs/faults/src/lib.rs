//! Misbehaving guests: loops, memory bombs, panics, deep recursion.
wit_bindgen::generate!({ world: "faults", path: "wit" });

struct Component;

impl Guest for Component {
    fn spin() {
        let mut x: u64 = 0;
        loop {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }
    fn bomb(mib: u32) -> u32 {
        let mut held: Vec<Vec<u8>> = Vec::new();
        for _ in 0..mib {
            held.push(vec![1u8; 1 << 20]);
        }
        std::hint::black_box(&held);
        held.len() as u32
    }
    fn panic(msg: String) {
        panic!("{msg}");
    }
    fn recurse(depth: u64) -> u64 {
        if depth == 0 {
            0
        } else {
            let buf = std::hint::black_box([depth; 64]);
            Self::recurse(depth - 1).wrapping_add(buf[3])
        }
    }
    fn sleep(ms: u64) -> u64 {
        std::thread::sleep(std::time::Duration::from_millis(ms));
        ms
    }
}

export!(Component);
