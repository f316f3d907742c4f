// A library the dlopen TLS test loads after its threads exist: one initial-exec TLS variable
// (placed in the static TLS surplus, initialised by ld.so only in threads glibc knows of), and one
// general-dynamic one (allocated per thread on first use).
__attribute__((tls_model("initial-exec"))) __thread int plugin_ie = 42;
__thread int plugin_gd = 7;

int plugin_ie_get(void) { return plugin_ie; }
int plugin_gd_get(void) { return plugin_gd; }
void plugin_set(int v) {
  plugin_ie = v;
  plugin_gd = v;
}
