//! Echoes a value of every WIT type, so the tests can round-trip each type
//! through the JSON mapping of `vessel call`.
wit_bindgen::generate!({ world: "types", path: "wit" });

struct Component;

impl Guest for Component {
    fn echo_bool(v: bool) -> bool {
        v
    }
    fn echo_s8(v: i8) -> i8 {
        v
    }
    fn echo_u8(v: u8) -> u8 {
        v
    }
    fn echo_s16(v: i16) -> i16 {
        v
    }
    fn echo_u16(v: u16) -> u16 {
        v
    }
    fn echo_s32(v: i32) -> i32 {
        v
    }
    fn echo_u32(v: u32) -> u32 {
        v
    }
    fn echo_s64(v: i64) -> i64 {
        v
    }
    fn echo_u64(v: u64) -> u64 {
        v
    }
    fn echo_f32(v: f32) -> f32 {
        v
    }
    fn echo_f64(v: f64) -> f64 {
        v
    }
    fn echo_char(v: char) -> char {
        v
    }
    fn echo_string(v: String) -> String {
        v
    }
    fn echo_list(v: Vec<u32>) -> Vec<u32> {
        v
    }
    fn echo_bytes(v: Vec<u8>) -> Vec<u8> {
        v
    }
    fn echo_nested(v: Vec<Vec<String>>) -> Vec<Vec<String>> {
        v
    }
    fn echo_record(v: Point) -> Point {
        v
    }
    fn echo_optional_field(v: WithOptional) -> WithOptional {
        v
    }
    fn echo_tuple(v: (u8, String, bool)) -> (u8, String, bool) {
        v
    }
    fn echo_variant(v: Shape) -> Shape {
        v
    }
    fn echo_enum(v: Color) -> Color {
        v
    }
    fn echo_flags(v: Perms) -> Perms {
        v
    }
    fn echo_option(v: Option<String>) -> Option<String> {
        v
    }
    fn echo_result(v: Result<u32, String>) -> Result<u32, String> {
        v
    }
    fn echo_unit_result(v: Result<(), ()>) -> Result<(), ()> {
        v
    }
    fn echo_points(v: Vec<Point>) -> Vec<Point> {
        v
    }
    fn nothing() {}
    fn sum(a: Blob) -> i64 {
        let total = a.numbers.iter().fold(0i64, |acc, n| acc.wrapping_add(*n));
        println!("{total}");
        total
    }
    fn greet(name: String, excited: bool, times: u8) -> String {
        let one = if excited {
            format!("hello, {name}!")
        } else {
            format!("hello, {name}")
        };
        vec![one; usize::from(times)].join(" ")
    }
    fn bytes_len(data: Vec<u8>) -> u64 {
        data.len() as u64
    }
    fn maybe(a: u32, b: Option<u32>) -> u32 {
        a + b.unwrap_or(100)
    }
}

impl exports::test::types::maths::Guest for Component {
    fn mul(a: u32, b: u32) -> u32 {
        a.wrapping_mul(b)
    }
}

export!(Component);
