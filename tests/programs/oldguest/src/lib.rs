//! A component built against the first vessel:storage@0.1.0 (frozen in
//! `vessel-storage-0.1.0/`), with raw bindings: later hosts add functions
//! to the package, and this guest must keep linking and running unchanged.
wit_bindgen::generate!({
    world: "test:oldguest/oldguest",
    path: ["vessel-storage-0.1.0", "wit"],
    generate_all,
});

use vessel::storage::dict::Dict;
use vessel::storage::volume::Volume;

struct Component;

fn e(err: impl std::fmt::Debug) -> String {
    format!("{err:?}")
}

impl Guest for Component {
    fn run(mount: String, dict: String) -> Result<String, String> {
        std::fs::write(format!("{mount}/old.txt"), "from an old guest").map_err(e)?;
        let vol = Volume::mounted(&mount).map_err(e)?;
        let info = vol.commit().map_err(e)?;
        let entries = vol.listdir("", false).map_err(e)?.len();
        let d = Dict::open(&dict, true).map_err(e)?;
        let count = d.increment("runs", 1).map_err(e)?;
        Ok(format!("{} {entries} {count}", info.version))
    }
}

export!(Component);
