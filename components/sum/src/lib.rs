//! Passing local data: the caller reads `blob.json` on its machine and
//! passes it as the argument of `foo`, which prints the sum.
wit_bindgen::generate!({ world: "sum", path: "wit" });

struct Sum;

impl Guest for Sum {
    fn foo(a: Blob) -> i64 {
        let total = a.numbers.iter().fold(0i64, |acc, n| acc.saturating_add(*n));
        println!("{total}");
        total
    }
}

export!(Sum);
