//! Calls vessel capabilities through the SDK and reports the outcome as
//! text, so tests can check what the host answers.
wit_bindgen::generate!({ world: "probe", path: "wit" });

struct Component;

impl Guest for Component {
    fn try_dict_open(name: String) -> String {
        match vessel_sdk::Dict::open(&name, true) {
            Ok(d) => format!("ok {}", d.name()),
            Err(e) => format!("error: {e}"),
        }
    }
    fn try_volume_mounted(path: String) -> String {
        match vessel_sdk::Volume::mounted(&path) {
            Ok(v) => format!("ok {}", v.name()),
            Err(e) => format!("error: {e}"),
        }
    }
    fn try_remote(function: String) -> String {
        match vessel_sdk::remote_json(&function, "[]") {
            Ok(r) => format!("ok {r}"),
            Err(e) => format!("error: {e}"),
        }
    }
}

export!(Component);
