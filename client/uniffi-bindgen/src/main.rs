//! `uniffi-bindgen`: generates Kotlin, Swift or Python bindings from the client cdylib, e.g.
//! `uniffi-bindgen generate --library libephemera_client.so --language python --out-dir out`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
