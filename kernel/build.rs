//! Links the kernel with its own linker script (higher half, physical load
//! addresses for PVH, a PT_NOTE segment for the Xen PVH entry note).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("-none") {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
        println!("cargo:rustc-link-arg-bins=-z");
        println!("cargo:rustc-link-arg-bins=max-page-size=4096");
    }
    println!("cargo:rerun-if-changed={dir}/linker.ld");
}
