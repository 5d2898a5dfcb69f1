//! The kubeconfig kubectl and kube-rs use to reach an emulator: plain HTTP, a dummy
//! token, context "kube-emulator".

/// A kubeconfig for `url`, as YAML.
pub fn yaml(url: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: kube-emulator
  cluster:
    server: {url}
contexts:
- name: kube-emulator
  context:
    cluster: kube-emulator
    user: kube-emulator
    namespace: default
current-context: kube-emulator
users:
- name: kube-emulator
  user:
    token: kube-emulator-dummy-token
preferences: {{}}
"
    )
}
