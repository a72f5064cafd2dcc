"""`vpop nas config`'s rendering (vpop/provisioning/nasconfig.py): the demo's NAS and
ISPs (vpop/store/demo.toml) in each vendor's words, secrets hidden unless asked for,
the L2TP part only for tunnel-mode ISPs."""

from __future__ import annotations

import tomllib

import pytest

from vpop.config import AccountingSettings, ServerSettings
from vpop.errors import ConfigError
from vpop.isp.model import Isp, RealmRule, TunnelEndpoint
from vpop.provisioning import nasconfig
from vpop.provisioning.nasconfig import NasEntry, render, setup, tunnel_isps, vpop_addresses
from vpop.radius.clients import NAS_TYPES
from vpop.store import demo

PLAN = tomllib.loads(demo.demo_plan_path().read_text())
DEMO_NAS = PLAN["nas"][0]
NAS = NasEntry(name=DEMO_NAS["name"], address=DEMO_NAS["address"], secret=DEMO_NAS["secret"])
ISPS = tuple(
    Isp(name=isp["name"], mode=isp["mode"],
        realms=tuple(RealmRule(kind="suffix", pattern=r) for r in isp.get("realms", ())),
        tunnels=tuple(TunnelEndpoint(address=t["address"], password=t["password"].encode(),
                                     preference=t.get("preference", 1),
                                     assignment_id=t.get("assignment_id"),
                                     client_auth_id=t.get("client_auth_id"))
                      for t in isp.get("tunnels", ())))
    for isp in PLAN["isp"])
SECRET = DEMO_NAS["secret"]
TUNNEL_SECRET = "isp-tunnel-secret"
SERVER = ServerSettings(listen=("127.0.0.1", "::1"))
INTERIM = AccountingSettings().interim_interval


def text(nas_type: str, *, nas: NasEntry = NAS, show: bool = False, isp: str | None = None,
         **kw) -> str:
    options = dict(listen=SERVER.listen, auth_port=SERVER.auth_port,
                   acct_port=SERVER.acct_port, interim_interval=INTERIM,
                   isps=tunnel_isps(ISPS, isp), show_secrets=show,
                   show_command=f"vpop nas config {nas.name}")
    options.update(kw)
    return render(setup(nas, nas_type=nas_type, **options))


# The lines each vendor's configuration must hold for the demo (secrets shown).
KEY_LINES = {
    "cisco": ["aaa new-model",
              "radius server vpop-1",
              " address ipv4 127.0.0.1 auth-port 1812 acct-port 1813",
              f" key 0 {SECRET}",
              "aaa group server radius vpop",
              " server name vpop-1",
              "aaa authentication ppp default group vpop",
              "aaa accounting network default start-stop group vpop",
              "aaa accounting update periodic 5",
              "aaa server radius dynamic-author",
              f" client 127.0.0.1 server-key 0 {SECRET}",
              " port 3799",
              "vpdn enable",
              "vpdn-group isp-tunnel",
              "  domain isp-tunnel.example",
              " initiate-to ip 198.51.100.10 priority 1",
              " initiate-to ip 198.51.100.11 priority 2",
              f" l2tp tunnel password 0 {TUNNEL_SECRET}"],
    "mikrotik": [f'/radius add service=ppp address=127.0.0.1 secret="{SECRET}" '
                 'authentication-port=1812 accounting-port=1813 src-address=127.0.0.1 '
                 'comment="vpop"',
                 "/ppp aaa set use-radius=yes accounting=yes interim-update=300s",
                 "/radius incoming set accept=yes port=3799",
                 f"#   ISP isp-tunnel: LNS 198.51.100.10, tunnel password {TUNNEL_SECRET}"],
    "juniper": ["set access radius-server 127.0.0.1 port 1812",
                "set access radius-server 127.0.0.1 accounting-port 1813",
                f'set access radius-server 127.0.0.1 secret "{SECRET}"',
                "set access profile vpop authentication-order radius",
                "set access profile vpop radius authentication-server [ 127.0.0.1 ]",
                "set access profile vpop radius accounting-server [ 127.0.0.1 ]",
                "set access profile vpop accounting order radius",
                "set access profile vpop accounting update-interval 10",
                "set access tunnel-profile isp-tunnel tunnel 1 tunnel-type l2tp",
                "set access tunnel-profile isp-tunnel tunnel 1 remote-gateway address "
                "198.51.100.10",
                f'set access tunnel-profile isp-tunnel tunnel 1 secret "{TUNNEL_SECRET}"',
                "set access tunnel-profile isp-tunnel tunnel 2 preference 2"],
    "accel-ppp": ["[radius]",
                  "nas-identifier=localhost",
                  "nas-ip-address=127.0.0.1",
                  f"server=127.0.0.1,{SECRET},auth-port=1812,acct-port=1813,req-limit=0,"
                  "fail-timeout=0",
                  "acct-interim-interval=300",
                  f"dae-server=127.0.0.1:3799,{SECRET}",
                  "attr=Filter-Id",
                  f"#   ISP isp-tunnel: LNS 198.51.100.10, tunnel password {TUNNEL_SECRET}"],
    "hostapd": ["driver=wired",
                "ieee8021x=1",
                "own_ip_addr=127.0.0.1",
                "nas_identifier=localhost",
                "auth_server_addr=127.0.0.1",
                "auth_server_port=1812",
                f"auth_server_shared_secret={SECRET}",
                "acct_server_addr=127.0.0.1",
                "acct_server_port=1813",
                f"acct_server_shared_secret={SECRET}",
                "radius_acct_interim_interval=300",
                "radius_auth_req_attr=61:d:15",
                "radius_acct_req_attr=61:d:15",
                "radius_das_port=3799",
                f"radius_das_client=127.0.0.1 {SECRET}"],
}


def test_every_vendor_type_has_key_lines_and_a_template():
    assert set(KEY_LINES) == set(nasconfig.CONFIG_TYPES) == set(NAS_TYPES) - {"generic"}
    for nas_type in nasconfig.CONFIG_TYPES:
        assert (nasconfig.SHIPPED / f"{nas_type}.j2").is_file()


@pytest.mark.parametrize("nas_type", sorted(KEY_LINES))
def test_the_demo_nas_in_each_vendors_words(nas_type):
    lines = text(nas_type, show=True).splitlines()
    missing = [line for line in KEY_LINES[nas_type] if line not in lines]
    assert not missing, "\n".join(lines)


@pytest.mark.parametrize("nas_type", sorted(KEY_LINES))
def test_secrets_are_placeholders_unless_asked_for(nas_type):
    hidden = text(nas_type)
    assert SECRET not in hidden and TUNNEL_SECRET not in hidden
    assert ("<secret of NAS localhost: vpop nas config localhost --show-secrets>"
            in hidden)
    shown = text(nas_type, show=True)
    assert SECRET in shown and "<secret of" not in shown


def test_the_template_names_the_vendor_documentation_it_follows():
    for nas_type in nasconfig.CONFIG_TYPES:
        top = (nasconfig.SHIPPED / f"{nas_type}.j2").read_text().split("-#}", 1)[0]
        assert "Follows" in top and "Context: nas" in top, nas_type


@pytest.mark.parametrize("nas_type", sorted(KEY_LINES))
def test_the_l2tp_part_only_for_tunnel_mode_isps(nas_type):
    without = text(nas_type, show=True, isps=())
    assert "198.51.100.10" not in without and TUNNEL_SECRET not in without
    if nas_type != "hostapd":  # IEEE 802.1X carries no L2TP: only a comment names them
        assert "198.51.100.10" in text(nas_type, show=True)


def test_isp_option_names_a_tunnel_mode_isp():
    assert [i.name for i in tunnel_isps(ISPS, None)] == ["isp-tunnel"]
    assert [i.name for i in tunnel_isps(ISPS, "isp-tunnel")] == ["isp-tunnel"]
    with pytest.raises(ConfigError, match="'isp-proxy' is in proxy mode.*isp-tunnel"):
        tunnel_isps(ISPS, "isp-proxy")
    with pytest.raises(ConfigError, match="no ISP 'acme' \\(ISPs: isp-local, isp-tunnel, "
                                          "isp-proxy\\)"):
        tunnel_isps(ISPS, "acme")


def test_a_disabled_tunnel_isp_is_left_out_unless_named():
    disabled = Isp(name="old", mode="tunnel", status="disabled",
                   tunnels=(TunnelEndpoint(address="192.0.2.9"),))
    assert [i.name for i in tunnel_isps((*ISPS, disabled), None)] == ["isp-tunnel"]
    assert [i.name for i in tunnel_isps((*ISPS, disabled), "old")] == ["old"]


def test_generic_names_no_vendor():
    with pytest.raises(ConfigError, match="give --type, one of cisco, mikrotik, juniper"):
        text("generic")


@pytest.mark.parametrize("listen, nas, expected", [
    (("127.0.0.1", "::1"), "127.0.0.1/32", ("127.0.0.1",)),
    (("127.0.0.1", "::1"), "::1/128", ("::1",)),
    (("192.0.2.5", "2001:db8::5"), "203.0.113.0/24", ("192.0.2.5",)),
    (("2001:db8::5",), "203.0.113.1/32", ("2001:db8::5",)),  # no address of its family
    (("0.0.0.0", "::"), "127.0.0.1/32", ("127.0.0.1",)),  # a loopback NAS: this host
    (("0.0.0.0", "::"), "::1/128", ("::1",)),
    (("0.0.0.0", "::"), "203.0.113.0/24", ()),  # unknown
])
def test_vpop_addresses_from_listen(listen, nas, expected):
    assert vpop_addresses(listen, nas) == expected


def test_unknown_addresses_are_placeholders_and_options_fill_them():
    bras = NasEntry(name="bras1", address="203.0.113.0/24", secret="s3cret")
    config = text("accel-ppp", nas=bras, listen=("0.0.0.0", "::"))
    assert "nas-ip-address=<address of NAS bras1 (provisioned as 203.0.113.0/24): " \
           "--nas-address ADDR>" in config
    assert "server=<vpop's address ([server] listen is a wildcard): --vpop-address ADDR>," \
           in config
    config = text("accel-ppp", nas=bras, listen=("0.0.0.0", "::"),
                  servers=("192.0.2.5", "192.0.2.6"), own_address="203.0.113.1")
    assert "nas-ip-address=203.0.113.1" in config
    assert config.count("server=192.0.2.") == 2


def test_the_nas_dynamic_authorization_settings():
    bras = NasEntry(name="bras1", address="203.0.113.1", secret="s3cret",
                    das_address="203.0.113.9", das_port=1700, das_secret="das-secret")
    config = text("accel-ppp", nas=bras, show=True)
    assert "dae-server=203.0.113.9:1700,das-secret" in config
    config = text("cisco", nas=bras, show=True)
    assert " client 127.0.0.1 server-key 0 das-secret" in config and " port 1700" in config
    for nas_type in ("mikrotik", "juniper"):  # one secret for both there: said so
        assert "das_secret" in text(nas_type, nas=bras)
        assert "das_secret" not in text(nas_type)
    hostapd = text("hostapd", nas=bras, show=True)
    assert "radius_das_port=1700" in hostapd
    assert "radius_das_client=127.0.0.1 das-secret" in hostapd


def test_hostapd_interface_and_control_directory():
    config = text("hostapd")
    assert "interface=<wired interface: --interface IFACE>" in config
    assert "ctrl_interface=/var/run/hostapd" in config
    config = text("hostapd", interface="veth0", ctrl_interface="/run/test-hostapd")
    assert "interface=veth0\n" in config and "ctrl_interface=/run/test-hostapd\n" in config


def test_accel_ppp_refuses_a_secret_its_server_line_cannot_carry():
    comma = NasEntry(name="bras1", address="203.0.113.1", secret="a,b")
    with pytest.raises(ConfigError, match="the secret of NAS bras1 contains ','"):
        text("accel-ppp", nas=comma, show=True)


def test_quoted_values_escape_quotes_and_backslashes():
    odd = NasEntry(name="bras1", address="203.0.113.1", secret='a"b\\c')
    assert 'secret="a\\"b\\\\c"' in text("mikrotik", nas=odd, show=True)


def test_interim_interval_in_minutes_where_vendors_count_them():
    config = text("cisco", interim_interval=90)
    assert "aaa accounting update periodic 2" in config
    juniper = text("juniper", interim_interval=1500)
    assert "accounting update-interval 30" in juniper


def test_an_operator_template_comes_first(tmp_path):
    (tmp_path / "nasconfig").mkdir()
    (tmp_path / "nasconfig" / "cisco.j2").write_text("! mine for {{ nas.name }}\n")
    nas = setup(NAS, nas_type="cisco", listen=SERVER.listen, auth_port=1812, acct_port=1813,
                interim_interval=300, isps=(), show_secrets=False, show_command="vpop")
    assert render(nas, str(tmp_path)) == "! mine for localhost\n"
