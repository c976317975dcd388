"""ConfigId, the config list and DataLinkSet: XML round trips and bad input."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from attpcdaq.get import ConfigId, DataLink, DataLinkSet, RouterType, XmlError, parse_config_list

# Any text XML can carry that is a plain, non-blank file name.
NAME = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1, max_size=20,
).filter(lambda s: s.strip() == s and s not in (".", ".."))
CONFIGS = st.builds(ConfigId, NAME, NAME, NAME)
LINKS = st.builds(
    DataLink, NAME, NAME, st.ip_addresses(v=4).map(str), st.integers(1, 65535),
    st.sampled_from(list(RouterType)))


@given(CONFIGS)
def test_config_id_round_trips(config):
    assert ConfigId.from_xml(config.as_xml()) == config
    assert ConfigId.parse(str(config)) == config if "/" not in str(config)[0] else True


@given(st.lists(CONFIGS, max_size=5), st.sampled_from(["ConfigIdSet", "ConfigIds", "List"]))
def test_config_list_round_trips_whatever_the_root_is_called(configs, root):
    assert parse_config_list(ConfigId.list_as_xml(configs, root=root)) == configs


@given(st.lists(LINKS, max_size=6))
def test_data_link_set_round_trips(links):
    table = DataLinkSet(tuple(links))
    assert DataLinkSet.from_xml(table.as_xml()) == table


def test_config_id_xml_is_what_the_server_expects():
    xml = ConfigId("cobo0", "experiment", "experiment").as_xml()
    assert xml == ('<ConfigId><SubConfigId type="describe">cobo0</SubConfigId>'
                   '<SubConfigId type="prepare">experiment</SubConfigId>'
                   '<SubConfigId type="configure">experiment</SubConfigId></ConfigId>')


def test_config_list_reads_namespaced_answers():
    text = ('<x:ConfigIdSet xmlns:x="urn:any"><x:ConfigId>'
            '<x:SubConfigId type="describe">a</x:SubConfigId>'
            '<x:SubConfigId type="prepare">b</x:SubConfigId>'
            '<x:SubConfigId type="configure">c</x:SubConfigId></x:ConfigId></x:ConfigIdSet>')
    assert parse_config_list(text) == [ConfigId("a", "b", "c")]


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty"),
    ("<ConfigId>", "malformed"),
    ("<Other/>", "not <ConfigId>"),
    ('<ConfigId><SubConfigId type="describe">a</SubConfigId></ConfigId>', "missing"),
    ('<ConfigId><SubConfigId type="describe">a</SubConfigId>'
     '<SubConfigId type="prepare">b</SubConfigId><SubConfigId type="configure">c</SubConfigId>'
     '<SubConfigId type="launch">d</SubConfigId></ConfigId>', "unknown SubConfigId type"),
    ('<ConfigId><SubConfigId type="describe">a</SubConfigId>'
     '<SubConfigId type="describe">b</SubConfigId></ConfigId>', "given twice"),
    ('<ConfigId><SubConfigId type="describe">../etc</SubConfigId>'
     '<SubConfigId type="prepare">b</SubConfigId><SubConfigId type="configure">c</SubConfigId>'
     '</ConfigId>', "not a plain file name"),
])
def test_bad_config_ids_raise_one_clear_error(text, message):
    with pytest.raises(XmlError, match=message):
        ConfigId.from_xml(text)


@pytest.mark.parametrize("text", ["cobo0/experiment", "a//c", "a/b/c/d", ""])
def test_bad_config_strings_are_refused(text):
    with pytest.raises(XmlError):
        ConfigId.parse(text)


@pytest.mark.parametrize(("text", "message"), [
    ("<DataLinkSet><DataLink><DataSender id='CoBo[0]'/></DataLink></DataLinkSet>",
     "needs a DataSender and a DataRouter"),
    ("<DataLinkSet><DataLink><DataSender/><DataRouter name='r' ipAddress='1.2.3.4' port='1'/>"
     "</DataLink></DataLinkSet>", "lacks DataSender id"),
    ("<DataLinkSet><DataLink><DataSender id='x'/><DataRouter name='r' ipAddress='1.2.3.4' "
     "port='http'/></DataLink></DataLinkSet>", "not a number"),
    ("<DataLinkSet><DataLink><DataSender id='x'/><DataRouter name='r' ipAddress='1.2.3.4' "
     "port='5' type='UDP'/></DataLink></DataLinkSet>", "unknown router type"),
    ("<DataLinkSet><DataLink><DataSender id='x'/><DataRouter name='r' ipAddress='1.2.3.4' "
     "port='70000'/></DataLink></DataLinkSet>", "out of range"),
    ("<Links/>", "root element"),
])
def test_bad_data_link_sets_raise_one_clear_error(text, message):
    with pytest.raises(XmlError, match=message):
        DataLinkSet.from_xml(text)


def test_external_entities_are_never_expanded():
    text = ("<!DOCTYPE d [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><DataLinkSet><DataLink>"
            "<DataSender id='&e;'/><DataRouter name='r' ipAddress='1.2.3.4' port='5'/>"
            "</DataLink></DataLinkSet>")
    try:
        table = DataLinkSet.from_xml(text)
    except XmlError:
        return
    assert "root:" not in table.as_xml()


def test_a_source_may_send_to_several_routers():
    table = DataLinkSet((DataLink("CoBo[0]", "r0", "127.0.0.1", 46005),
                         DataLink("CoBo[0]", "exporter", "127.0.0.1", 46010, "TCP")))
    assert [link.router_name for link in DataLinkSet.from_xml(table.as_xml())] == ["r0", "exporter"]
