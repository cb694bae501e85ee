//! Sets a V4L2 control by name, for the full-system test's fault
//! injection through vivid (`tests/system/README.md`):
//!
//!     vivid_ctl /dev/video0 "Percentage of Dropped Buffers" 50
//!     vivid_ctl /dev/video0 "Disconnect" press
//!
//! VALUE is an integer, or `press` for a button control. Needs the `v4l2`
//! feature. Not part of the runtime.

#[cfg(feature = "v4l2")]
fn main() {
    use v4l::control::{Control, Type, Value};
    let args: Vec<String> = std::env::args().collect();
    let [_, device, name, value] = args.as_slice() else {
        eprintln!("usage: vivid_ctl DEVICE \"CONTROL NAME\" VALUE|press");
        std::process::exit(2);
    };
    let fail = |what: String| -> ! {
        eprintln!("vivid_ctl: {device}: {what}");
        std::process::exit(1)
    };
    let dev = v4l::Device::with_path(device).unwrap_or_else(|e| fail(e.to_string()));
    let controls = dev.query_controls().unwrap_or_else(|e| fail(e.to_string()));
    let Some(c) = controls.iter().find(|c| c.name == *name) else {
        fail(format!("no control named '{name}'"))
    };
    let value = match (c.typ, value.as_str()) {
        (Type::Button, "press") => Value::None,
        (Type::Boolean, v) => Value::Boolean(v != "0"),
        (_, v) => Value::Integer(
            v.parse()
                .unwrap_or_else(|_| fail(format!("'{v}' is not a number"))),
        ),
    };
    dev.set_control(Control { id: c.id, value })
        .unwrap_or_else(|e| fail(format!("{name}: {e}")));
    println!("vivid_ctl: {name} = {}", args[3]);
}

#[cfg(not(feature = "v4l2"))]
fn main() {
    eprintln!("vivid_ctl needs the v4l2 feature");
    std::process::exit(1);
}
