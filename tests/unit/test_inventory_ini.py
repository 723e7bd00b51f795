"""Ansible INI inventories: the examples of Ansible's "How to build your inventory" (tests/inventories/*.ini),
and every error naming the file and the line."""

from __future__ import annotations

import shlex
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetbus.hosts.inventory import Inventory, InventoryError, Location, load_inventory, parse_inventory
from fleetbus.hosts.inventory import ini as ini_module
from fleetbus.hosts.inventory.values import ini_value, literal_value

FIXTURES = Path(__file__).resolve().parents[1] / "inventories"


def ini(text: str) -> Inventory:
    return parse_inventory(textwrap.dedent(text), source="test.ini", inventory_format="ini")


def members(inventory: Inventory, group: str) -> list[str]:
    return [host.name for host in inventory.group_hosts(group)]


def test_basic_example_puts_hosts_before_any_section_in_ungrouped() -> None:
    inventory = load_inventory(FIXTURES / "basic.ini")
    assert list(inventory.hosts) == [
        "mail.example.com",
        "foo.example.com",
        "bar.example.com",
        "one.example.com",
        "two.example.com",
        "three.example.com",
    ]
    assert inventory.groups["ungrouped"].hosts == ("mail.example.com",)
    assert inventory.groups["webservers"].hosts == ("foo.example.com", "bar.example.com")
    assert inventory.groups["all"].children == ("ungrouped", "webservers", "dbservers")
    assert inventory.host("foo.example.com").groups == ("webservers",)


def test_groups_of_groups_share_hosts_and_nest() -> None:
    inventory = load_inventory(FIXTURES / "groups_of_groups.ini")
    assert inventory.host("foo.example.com").groups == ("webservers", "east")
    assert inventory.groups["prod"].children == ("east",)
    assert inventory.groups["east"].parents == ("prod",)
    assert members(inventory, "prod") == ["foo.example.com", "one.example.com", "two.example.com"]
    assert inventory.group_names("foo.example.com") == ("east", "prod", "webservers")
    # A host also listed in a group leaves ungrouped, as Ansible's reconciliation does.
    assert inventory.groups["ungrouped"].hosts == ("mail.example.com",)
    assert inventory.groups["east"].depth == 2
    assert inventory.groups["prod"].depth == 1


def test_ranges_expand_with_padding_steps_letters_and_several_ranges() -> None:
    inventory = load_inventory(FIXTURES / "ranges.ini")
    webservers = inventory.groups["webservers"].hosts
    assert len(webservers) == 50
    assert webservers[0] == "www01.example.com"
    assert webservers[-1] == "www50.example.com"
    assert inventory.groups["odd_webservers"].hosts[:3] == (
        "www01.example.com",
        "www03.example.com",
        "www05.example.com",
    )
    assert len(inventory.groups["odd_webservers"].hosts) == 25
    assert inventory.groups["databases"].hosts == tuple(f"db-{letter}.example.com" for letter in "abcdef")
    assert inventory.groups["db"].hosts == (
        "db-99-node.example.com",
        "db-100-node.example.com",
        "db-101-node.example.com",
    )
    assert inventory.groups["racks"].hosts == ("rack1-nodea", "rack1-nodeb", "rack2-nodea", "rack2-nodeb")


def test_host_variables_ports_and_aliases() -> None:
    inventory = load_inventory(FIXTURES / "variables.ini")
    badwolf = inventory.host("badwolf.example.com")
    assert (badwolf.address, badwolf.port) == ("badwolf.example.com", 5309)
    assert badwolf.vars == {"ansible_port": 5309}
    jumper = inventory.host("jumper")
    assert (jumper.address, jumper.port) == ("192.0.2.50", 5555)
    assert inventory.host("host1").vars == {"http_port": 80, "maxRequestsPerChild": 808}
    assert inventory.variables("host2") == {
        "http_port": 303,
        "maxRequestsPerChild": 909,
        "ntp_server": "ntp.atlanta.example.com",
        "proxy": "proxy.atlanta.example.com",
    }
    assert inventory.host("some_host").user == "manager"
    assert inventory.host("some_host").port == 2222
    assert inventory.host("aws_host").identity_file == Path("/home/example/.ssh/aws.pem")
    assert inventory.host("other2.example.com").user == "myotheruser"
    assert inventory.variables("freebsd_host")["ansible_python_interpreter"] == "/usr/local/bin/python"


def test_group_variables_reach_hosts_through_children() -> None:
    inventory = load_inventory(FIXTURES / "inheritance.ini")
    assert inventory.groups["southeast"].vars == {
        "some_server": "foo.southeast.example.com",
        "halon_system_timeout": 30,
        "self_destruct_countdown": 60,
        "escape_pods": 2,
    }
    assert inventory.variables("host3")["escape_pods"] == 2
    assert inventory.groups["usa"].children == ("southeast", "northeast", "southwest", "northwest")
    assert members(inventory, "usa") == ["host1", "host2", "host3"]
    assert members(inventory, "northeast") == []


def test_values_are_python_literals_else_text_on_host_lines_and_in_vars_sections() -> None:
    inventory = load_inventory(FIXTURES / "quoting.ini")
    assert inventory.host("h1").vars == {
        "text": "two words",
        "number": 42,
        "real": 1.5,
        "yes": True,
        "none": None,
        "listed": [1, "two"],
        "mapping": {"k": "v"},
    }
    # On a host line `#` starts a comment even inside a word (Python's shlex, as Ansible uses it): `hashy` is
    # "a", and `quoted='single quoted'` after it is part of the comment (ansible-inventory agrees).
    assert inventory.host("h2").vars == {"path": "/usr/bin/python3", "version": "1.2.3", "hashy": "a"}
    assert inventory.groups["g"].vars == {
        "greeting": "hello world",
        "literal": ["a", "b"],
        "trailing": "text # not a comment: stays in the string",
    }


def test_ini_plugin_example_child_vars_override_parent_and_host_vars_win() -> None:
    inventory = load_inventory(FIXTURES / "ini_plugin.ini")
    assert inventory.variables("jenkins1")["has_java"] is True
    assert inventory.variables("tomcat1")["has_java"] is False
    assert inventory.variables("tomcat1")["myvar"] == 23
    assert inventory.variables("tomcat2")["myvar"] == 34
    assert inventory.variables("tomcat3")["mysecret"] == "03#pa33w0rd"
    assert inventory.host("host2").port == 222


def test_ipv6_and_ports_follow_ansible_address_rules() -> None:
    inventory = load_inventory(FIXTURES / "addresses.ini")
    assert inventory.host("192.0.2.2").port == 2222
    assert inventory.host("2001:db8::1").port == 2200
    assert inventory.host("2001:db8::2").port is None
    assert [name for name in inventory.hosts if name.startswith("fe80")] == ["fe80::a", "fe80::b", "fe80::c"]
    assert [name for name in inventory.hosts if name.startswith("10.")] == [
        f"10.0.{third}.{fourth}" for third in (1, 2) for fourth in (1, 2, 3)
    ]
    assert inventory.host("web02").port == 2022
    assert inventory.host("web02").user == "deploy"


def test_a_host_defined_twice_keeps_its_first_port_and_merges_its_variables() -> None:
    inventory = ini(
        """
        [web]
        h1:22 a=1
        [db]
        h1:23 a=2 b=3
        """
    )
    assert inventory.host("h1").vars == {"ansible_port": 22, "a": 2, "b": 3}
    assert inventory.host("h1").groups == ("web", "db")


def test_children_may_be_declared_after_the_parent_names_them() -> None:
    inventory = ini(
        """
        [parent:children]
        later
        [parent:vars]
        x=1
        [later]
        h1
        """
    )
    assert inventory.groups["parent"].children == ("later",)
    assert inventory.variables("h1") == {"x": 1}


def test_comments_of_both_markers_and_trailing_section_comments_are_ignored() -> None:
    inventory = ini(
        """
        ; semicolon comment
        # hash comment
        [web] # trailing comment
        h1 # comment after a host
        """
    )
    assert list(inventory.hosts) == ["h1"]
    assert inventory.host("h1").vars == {}


def test_a_comment_line_that_is_not_utf8_is_ignored() -> None:
    inventory = parse_inventory(b"# caf\xe9\n[web]\nh1\n", source="latin1.ini", inventory_format="ini")
    assert list(inventory.hosts) == ["h1"]


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("[web:hostz]\nh1\n", 1, "unknown type 'hostz'"),
        ("h1\n[web servers]\n", 2, "invalid section"),
        ("[web]\nh1 novalue\n", 2, "expected key=value"),
        ("[web]\nh1 a='unterminated\n", 2, "cannot read host line"),
        ("[web]\nh1:\n", 2, "ends in ':'"),
        ("---\nall:\n", 1, "looks like a YAML file"),
        ("[web:vars]\nx=1\n", 1, "no section declares"),
        ("[web]\nh1\n[web:vars]\njustaword\n", 4, "expected key=value"),
        ("[prod:children]\nweb\n", 2, "names 'web', a group that no section declares"),
        ("[prod:children]\nweb extra\n", 2, "expected a group name"),
        ("[prod:children]\nprod\n", 2, "cannot be a child of itself"),
        ("[web]\nlocal\n", 2, "'local' is reserved"),
        ("[local]\nh1\n", 1, "'local' is reserved"),
        ("[web]\nall\n", 2, "built-in group"),
        ("[web]\nweb[1:3\n", 2, "unbalanced brackets"),
        ("[web]\nweb[01:3]\n", 2, "same width"),
        ("[web]\nweb[1:3:0]\n", 2, "positive whole number"),
        ("[web]\nweb[a:3]\n", 2, "two numbers or two single letters"),
        ("[web]\nweb[f:a]\n", 2, "runs backwards"),
        ("[web]\n'a b'\n", 2, "contains a space"),
        ("[web]\n!web\n", 2, "host pattern operator"),
        ("[web]\nh1 ansible_port=http\n", 2, "not a port number"),
        ("[web]\nh1 ansible_port=70000\n", 2, "not a port number"),
        ("[web]\nh1\n[web:vars]\nansible_port=[22]\n", 2, "ansible_port (set on group 'web')"),
        ("[web]\nh1 ansible_host='{{ lookup(\"x\") }}'\n", 2, "Jinja template"),
        ("[web]\nh1\n[web:vars]\nansible_group_priority=high\n", 4, "must be a whole number"),
    ],
)
def test_errors_name_the_file_and_line(text: str, line: int, words: str) -> None:
    with pytest.raises(InventoryError) as raised:
        parse_inventory(text, source="bad.ini", inventory_format="ini")
    assert str(raised.value).startswith(f"bad.ini:{line}: ")
    assert words in str(raised.value)


def test_a_cycle_of_groups_is_named_whole() -> None:
    with pytest.raises(InventoryError) as raised:
        ini(
            """
            [a:children]
            b
            [b:children]
            c
            [c:children]
            a
            """
        )
    # Reported at the line that closed the cycle.
    assert str(raised.value).startswith("test.ini:7: groups form a cycle: a → b → c → a")


def test_a_backwards_numeric_range_stands_for_no_host_with_a_warning() -> None:
    inventory = ini("[web]\nweb[9:1]\nh1\n")
    assert list(inventory.hosts) == ["h1"]
    assert inventory.warnings == (
        "test.ini:2: host range 'web[9:1]' stands for no host (its numeric range runs backwards)",
    )


def test_a_name_used_for_a_group_and_a_host_is_warned_about() -> None:
    inventory = ini("[web]\nweb\n")
    assert inventory.warnings == ("'web' names both a group and a host; a pattern 'web' selects the host",)


VALUE_PIECES = st.sampled_from(
    [
        "True",
        "False",
        "None",
        "0",
        "7",
        "-3",
        "007",
        "1.5",
        "1e3",
        "10.0.0.5",
        "/usr/bin",
        "~x",
        "a",
        "é",
        "_x",
        ",",
        " ",
        "#",
        "'",
        '"',
        "[",
        "]",
        "{",
        "}",
        "(",
        ")",
        ":",
        ".",
        "-",
        "+",
        "j",
        "\\",
        "\t",
        "inf",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(VALUE_PIECES, min_size=1, max_size=5).map("".join))
def test_value_shortcuts_agree_with_literal_eval(text: str) -> None:
    try:
        expected = literal_value(text, Location("t"))
    except InventoryError:
        return
    got = ini_value(text, Location("t"))
    assert got == expected
    assert type(got) is type(expected)


LINE_PIECES = st.sampled_from(["h1", "a=1", "x=y", " ", "\t", "#", "'", '"', "\\", "=", "b", "\x0b", "\xa0"])


@settings(max_examples=1000, deadline=None)
@given(st.lists(LINE_PIECES, min_size=1, max_size=8).map("".join))
def test_plain_lines_split_as_shlex_splits_them(line: str) -> None:
    stripped = line.strip()
    if ini_module._PLAIN_LINE.fullmatch(stripped):
        assert stripped.split() == shlex.split(stripped, comments=True)
