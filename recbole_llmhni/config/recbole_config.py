"""``LLMHNIConfig``: RecBole's Config with the plugin's models and defaults layered in.

Precedence, lowest first (RecBole's own order, with the plugin's layers slotted in):

1. RecBole's ``overall.yaml``, model YAML (built-in models) and dataset YAML;
2. the plugin's ``properties/overall.yaml`` (evaluation protocol, every ``llmhni_*`` key);
3. the plugin's ``properties/model/<model>.yaml`` (plugin models);
4. ``<data_path>/<dataset>/<dataset>.yaml`` written by ``python -m recbole_llmhni prepare``;
5. config files, ``config_dict`` and the command line (RecBole's external config).

Every ``llmhni_*`` value of the result is checked (:func:`~recbole_llmhni.config.validate.validate`)
before the constructor returns, so a bad value fails in a second with one line, before any
stage runs or any file is written.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple, Type

from recbole.config import Config

from recbole_llmhni import compat, registry
from recbole_llmhni.config.defaults import PROPERTIES_DIR
from recbole_llmhni.config.validate import check_neg_mode_fits, validate

__all__ = ["LLMHNIConfig"]


class LLMHNIConfig(Config):
    """RecBole ``Config`` that resolves plugin model names, loads the plugin's YAML defaults and
    checks every ``llmhni_*`` value (:class:`~recbole_llmhni.config.validate.ConfigError`)."""

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None) -> None:
        super().__init__(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
        self.final_config_dict.update(validate(self.final_config_dict, model=self.final_config_dict.get("model")))
        check_neg_mode_fits(self.model_class, self.final_config_dict)

    def _init_device(self) -> None:
        """RecBole's device set-up, with gloo on the CPU for distributed runs (:func:`recbole_llmhni.compat.init_device`)."""
        compat.init_device(self.final_config_dict)

    def _get_model_and_dataset(self, model, dataset) -> Tuple[str, Type, str]:
        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise KeyError("model must be given: --model=NAME, a config file or config_dict")
        if isinstance(model, str):
            model_class = registry.get_model(model)
        else:
            model_class, model = model, model.__name__
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise KeyError("dataset must be given: --dataset=NAME, a config file or config_dict")
        return model, model_class, dataset

    def _load_internal_config_dict(self, model: str, model_class: Type, dataset: str) -> None:
        super()._load_internal_config_dict(model, model_class, dataset)
        self._update_internal_config_dict(str(PROPERTIES_DIR / "overall.yaml"))
        plugin_model_yaml = PROPERTIES_DIR / "model" / f"{model}.yaml"
        if plugin_model_yaml.is_file():
            self._update_internal_config_dict(str(plugin_model_yaml))
        prepared_yaml = self.prepared_dataset_yaml(dataset)
        if prepared_yaml is not None:
            config_dict = self._update_internal_config_dict(str(prepared_yaml)) or {}
            # rebind, never ``+=``: the list is RecBole's module-level ``dataset_arguments``
            self.parameters["Dataset"] = self.parameters["Dataset"] + [
                k for k in config_dict if k not in self.parameters["Dataset"]
            ]

    def __str__(self) -> str:
        """RecBole's table of parameters, with secrets masked (it is logged at every run)."""
        secret = self.final_config_dict.get("llmhni_api_key")
        if not secret:
            return super().__str__()
        self.final_config_dict["llmhni_api_key"] = "***"
        try:
            return super().__str__()
        finally:
            self.final_config_dict["llmhni_api_key"] = secret

    def prepared_dataset_yaml(self, dataset: str) -> Optional[Path]:
        """The YAML that ``prepare`` wrote for ``dataset`` under the configured data_path, if any."""
        data_path = self.external_config_dict.get("data_path", self.internal_config_dict.get("data_path"))
        if not data_path:
            return None
        candidate = Path(data_path) / dataset / f"{dataset}.yaml"
        return candidate if candidate.is_file() else None
