import pytest

from recbole_llmhni import registry


def test_builtin_models_resolve_to_recbole_classes():
    from recbole.model.general_recommender import BPR, LightGCN, NGCF

    assert registry.get_model("LightGCN") is LightGCN
    assert registry.get_model("NGCF") is NGCF
    assert registry.get_model("BPR") is BPR


def test_plugin_models_resolve_first():
    for name in registry.PLUGIN_MODELS:
        cls = registry.get_model(name)
        assert cls.__name__ == name and cls.__module__.startswith("recbole_llmhni.")


def test_unknown_model_lists_known_models_and_suggests_spelling():
    with pytest.raises(registry.UnknownModelError) as info:
        registry.get_model("LightGcn")
    message = str(info.value)
    assert "Did you mean 'LightGCN'" in message
    assert "BPR" in message and "NGCF" in message
    for name in registry.PLUGIN_MODELS:
        assert name in message


def test_known_models_lists_plugin_then_recbole():
    names = registry.known_models()
    assert names[: len(registry.PLUGIN_MODELS)] == sorted(registry.PLUGIN_MODELS)
    assert "LightGCN" in names and "SGL" in names
