"""istio_analysis_info's pure parts: istioctl analyze's JSON findings, given to tenants, judged by level; and the
kubeconfig istioctl gets from the module's client."""

import json
import subprocess

import kubernetes
import pytest
from ansible_collections.meshops.istio.plugins.module_utils.analysis import (
    analyze_command,
    at_or_above,
    bounded_run,
    origin_parts,
    parse_findings,
    serving,
    tenants_report,
)
from ansible_collections.meshops.istio.plugins.module_utils.client import kubeconfig_for


def message(code, level, origin, text="text"):
    return {"code": code, "level": level, "message": text, "origin": origin,
            "documentationUrl": f"https://istio.io/latest/docs/reference/config/analysis/{code.lower()}/"}  # fmt: skip


OUTPUT = json.dumps(
    [
        message("IST0102", "Info", "Namespace usergroup-1"),
        message("IST0101", "Error", "VirtualService app-ns-1/broken", 'Referenced gateway not found: "missing"'),
        message("IST0118", "Info", "Service app-ns-2/web"),
        message("IST0145", "Warning", "MutatingWebhookConfiguration istio-sidecar-injector-usergroup-1-usergroup-1"),
        message("IST0103", "Warning", "Pod other/legacy-1"),
    ]
)
REVISIONS = {
    "usergroup-1": {"namespace": "usergroup-1", "selectors": []},
    "usergroup-2": {"namespace": "usergroup-2", "selectors": []},
}
TENANTS = [
    {"name": "usergroup-1", "revision": "usergroup-1", "namespaces": ["app-ns-1"]},
    {"name": "usergroup-2", "revision": "usergroup-2", "namespaces": ["app-ns-2"]},
]


@pytest.mark.parametrize(
    ("origin", "parts"),
    [
        ("VirtualService app-ns-1/broken", ("VirtualService", "app-ns-1", "broken")),
        ("Namespace usergroup-1", ("Namespace", "usergroup-1", "usergroup-1")),
        ("MutatingWebhookConfiguration injector", ("MutatingWebhookConfiguration", None, "injector")),
        ("", ("", None, "")),
    ],
)
def test_origin_parts(origin, parts):
    assert origin_parts(origin) == parts


def test_findings_parse_after_anything_istioctl_prints_first():
    findings = parse_findings("some log line\n" + OUTPUT)
    assert [f["code"] for f in findings] == ["IST0102", "IST0101", "IST0118", "IST0145", "IST0103"]
    assert findings[1]["namespace"] == "app-ns-1" and findings[1]["kind"] == "VirtualService"
    assert parse_findings("[]") == []
    with pytest.raises(ValueError):
        parse_findings("Error: something else")


def test_each_tenant_gets_its_namespaces_its_system_namespace_and_cluster_scoped_findings():
    findings = parse_findings(OUTPUT)
    report = tenants_report(TENANTS, REVISIONS, {"usergroup-1": findings, "usergroup-2": findings}, "Error")
    one, two = report["tenants"]["usergroup-1"], report["tenants"]["usergroup-2"]
    assert [f["code"] for f in one["findings"]] == ["IST0102", "IST0101", "IST0145"]
    assert one["counts"] == {"Info": 1, "Warning": 1, "Error": 1}
    assert [f["code"] for f in two["findings"]] == ["IST0118", "IST0145"]  # other/legacy-1 is no tenant's
    assert report["problems"] == [
        "tenant usergroup-1: istioctl analyze --revision usergroup-1 reports Error IST0101 on VirtualService "
        'app-ns-1/broken: Referenced gateway not found: "missing"'
    ]


def test_fail_level_and_an_uninstalled_revision():
    findings = parse_findings(OUTPUT)
    assert [f["code"] for f in at_or_above(findings, "Warning")] == ["IST0101", "IST0145", "IST0103"]
    assert len(at_or_above(findings, "Info")) == 5
    report = tenants_report([{**TENANTS[0], "revision": "gone"}], REVISIONS, {}, "Error")
    assert report == {"tenants": {}, "problems": ["tenant usergroup-1: revision gone is not installed, so no "
                                                  "analyzer ran for it"]}  # fmt: skip


def test_the_command_names_the_revision_its_namespace_and_the_private_kubeconfig():
    command = analyze_command(
        "istioctl", "/tmp/k", "usergroup-1", "usergroup-1", ["IST0127=AuthorizationPolicy */meshops-tenant-isolation"]
    )
    assert command[:2] == ["istioctl", "analyze"] and "--all-namespaces" in command
    pairs = dict(zip(command[2::], command[3::], strict=False))
    assert pairs["--revision"] == "usergroup-1" and pairs["--istioNamespace"] == "usergroup-1"
    assert pairs["--output"] == "json" and pairs["--kubeconfig"] == "/tmp/k"
    assert pairs["--suppress"] == "IST0127=AuthorizationPolicy */meshops-tenant-isolation"


def _api_client(**attributes):
    configuration = kubernetes.client.Configuration()
    configuration.host = "https://10.0.0.1:6443"
    for name, value in attributes.items():
        setattr(configuration, name, value)
    return kubernetes.client.ApiClient(configuration)


def test_the_kubeconfig_for_istioctl_carries_the_clients_credentials():
    client = _api_client(api_key={"authorization": "Bearer s3cret"}, ssl_ca_cert="/ca.pem")
    client.set_default_header("Impersonate-User", "alice")
    config = kubeconfig_for(client)
    assert config["clusters"][0]["cluster"] == {"server": "https://10.0.0.1:6443", "certificate-authority": "/ca.pem"}
    assert config["users"][0]["user"] == {"token": "s3cret", "as": "alice"}
    certificate = kubeconfig_for(_api_client(cert_file="/c.pem", key_file="/k.pem", verify_ssl=False))
    assert certificate["clusters"][0]["cluster"]["insecure-skip-tls-verify"] is True
    assert certificate["users"][0]["user"] == {"client-certificate": "/c.pem", "client-key": "/k.pem"}
    assert config["current-context"] == "module"


def run_command(command, before_communicate_callback):
    """What AnsibleModule.run_command does with the callback: it gets the process before the output is read."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    before_communicate_callback(process)
    out, err = process.communicate()
    return process.returncode, out, err


def test_a_command_that_does_not_answer_is_stopped_and_one_that_does_is_not():
    assert bounded_run(run_command, ["sleep", "30"], 0.2)[3] is True
    assert bounded_run(run_command, ["echo", "[]"], 30) == (0, "[]\n", "", False)


def test_the_analyzed_revision_is_the_one_serving_the_tenants_namespaces():
    revisions = {"usergroup-1": {"namespace": "usergroup-1"}, "usergroup-1-v2": {"namespace": "usergroup-1"}}
    tenant = {"name": "usergroup-1", "revision": "usergroup-1", "namespaces": ["app-ns-1"]}
    moved = {"app-ns-1": {"istio.io/rev": "usergroup-1-v2"}}
    assert serving(tenant, moved, revisions)["revision"] == "usergroup-1-v2"
    assert serving(tenant, {"app-ns-1": {"istio.io/rev": "gone"}}, revisions) == tenant
    assert serving(tenant, {}, revisions) == tenant
