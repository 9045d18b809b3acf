//! Modal's reload example on vessel. `f` and `g` mount the same volume at
//! `/root/foo`. `g`'s container stays warm between calls and keeps the
//! snapshot it mounted, so it sees `f`'s commit only after `reload()`.
wit_bindgen::generate!({ world: "reload", path: "wit" });

use vessel_sdk::Volume;

const P: &str = "/root/foo/bar.txt";
const MOUNT: &str = "/root/foo";

struct Reload;

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    // A panic traps the call; the caller sees it as a failed call.
    panic!("{what}: {e}")
}

impl Guest for Reload {
    fn f() {
        let volume = Volume::mounted(MOUNT).unwrap_or_else(|e| fail("mount", e));
        std::fs::write(P, "hello").unwrap_or_else(|e| fail("write", e));
        println!("Created p={P}");
        volume.commit().unwrap_or_else(|e| fail("commit", e));
        println!("Committed p={P}");
    }

    fn g(reload: Option<bool>) {
        if reload.unwrap_or(false) {
            let volume = Volume::mounted(MOUNT).unwrap_or_else(|e| fail("mount", e));
            volume.reload().unwrap_or_else(|e| fail("reload", e));
        }
        match std::fs::read_to_string(P) {
            Ok(text) => println!("p={P} contains {text}"),
            Err(_) => println!("p={P} does not exist!"),
        }
    }

    fn main() {
        let run = |function: &str, args: &str| {
            vessel_sdk::remote_json(function, args).unwrap_or_else(|e| fail(function, e));
        };
        run("g", "[]"); // 1. container for `g` starts
        run("f", "[]"); // 2. container for `f` starts, commits file
        run("g", "[false]"); // 3. reuses container for `g`, no reload
        run("g", "[true]"); // 4. reuses container, but reloads to see file
    }
}

export!(Reload);
