//! A `wasi:cli/run` command for `vessel run` tests. Arguments are a little
//! script: `echo TEXT`, `cat PATH`, `write PATH TEXT`, `ls PATH`,
//! `stdin` (echo stdin), `env`, `exit N`, and `readlen PATH CHUNK BYTES`
//! (reads PATH with CHUNK-byte reads and exits 6 unless it held BYTES
//! bytes: the read benchmark runs it under vessel and plain wasmtime-wasi).
use std::io::Read;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(cmd) = it.next() {
        let mut next = || it.next().cloned().unwrap_or_default();
        match cmd.as_str() {
            "echo" => println!("{}", next()),
            "cat" => {
                let path = next();
                match std::fs::read_to_string(&path) {
                    Ok(s) => print!("{s}"),
                    Err(e) => {
                        eprintln!("cat {path}: {e}");
                        std::process::exit(3);
                    }
                }
            }
            "write" => {
                let path = next();
                let text = next();
                if let Err(e) = std::fs::write(&path, text) {
                    eprintln!("write {path}: {e}");
                    std::process::exit(4);
                }
            }
            "ls" => {
                let path = next();
                match std::fs::read_dir(&path) {
                    Ok(rd) => {
                        let mut names: Vec<String> = rd
                            .filter_map(|e| e.ok())
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect();
                        names.sort();
                        println!("{}", names.join(" "));
                    }
                    Err(e) => {
                        eprintln!("ls {path}: {e}");
                        std::process::exit(5);
                    }
                }
            }
            "stdin" => {
                let mut s = String::new();
                let _ = std::io::stdin().read_to_string(&mut s);
                print!("{s}");
            }
            "readlen" => {
                let path = next();
                let chunk: usize = next().parse().unwrap_or(1 << 20);
                let want: u64 = next().parse().unwrap_or(0);
                let mut f = match std::fs::File::open(&path) {
                    Ok(f) => f,
                    Err(e) => {
                        eprintln!("readlen {path}: {e}");
                        std::process::exit(3);
                    }
                };
                let mut buf = vec![0u8; chunk.max(1)];
                let mut total = 0u64;
                loop {
                    match f.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => total += n as u64,
                        Err(e) => {
                            eprintln!("readlen {path}: {e}");
                            std::process::exit(3);
                        }
                    }
                }
                if total != want {
                    eprintln!("readlen {path}: read {total} bytes, expected {want}");
                    std::process::exit(6);
                }
            }
            "env" => println!("{}", std::env::vars().count()),
            "exit" => std::process::exit(next().parse().unwrap_or(1)),
            other => {
                eprintln!("unknown command {other}");
                std::process::exit(64);
            }
        }
    }
}
