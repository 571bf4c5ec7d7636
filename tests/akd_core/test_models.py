"""The model registry: every name builds, gives logits, and refuses bad names, options and inputs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from akd_core.errors import SpecError
from akd_core.models import available_models, build_model, count_params, model_kind_ok
from akd_core.models.names import ARCH_OPTIONS, INPUT_KINDS, MODEL_NAMES

torch.set_num_threads(1)


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 8, 8)])
def test_every_model_gives_batch_by_class_logits(name: str, shape: tuple[int, ...]) -> None:
    model = build_model(name, shape, 10).eval()
    with torch.no_grad():
        out = model(torch.randn(3, *shape))
    assert out.shape == (3, 10)
    assert torch.isfinite(out).all()


def test_resnet8_has_about_78k_params() -> None:
    n = count_params(build_model("resnet8", (3, 32, 32), 10))
    print(f"resnet8 params: {n}")
    assert 70_000 <= n <= 90_000


def test_resnet_depth_and_width_change_size() -> None:
    r8 = count_params(build_model("resnet8", (3, 32, 32), 10))
    r110 = count_params(build_model("resnet110", (3, 32, 32), 10))
    wide = count_params(build_model("resnet8", (3, 32, 32), 10, {"width": 32}))
    assert r110 > 20 * r8  # the paper's ~22x gap between teacher and student
    assert wide > 3 * r8


def test_cnn_tiny_fits_digits_in_under_5k_params() -> None:
    assert count_params(build_model("cnn-tiny", (1, 8, 8), 10)) < 5_000


def test_unknown_name_lists_available_models() -> None:
    with pytest.raises(SpecError) as err:
        build_model("resnet9", (3, 32, 32), 10)
    assert err.value.field == "student.arch"
    assert "resnet9" in err.value.message
    assert "resnet8" in err.value.message and "mlp" in err.value.message


def test_unknown_option_names_it_and_the_accepted_ones() -> None:
    with pytest.raises(SpecError) as err:
        build_model("resnet8", (3, 32, 32), 10, {"depth": 3})
    assert err.value.field == "student.options"
    assert "'depth'" in err.value.message and "width" in err.value.message


@pytest.mark.parametrize(
    ("name", "options", "option"),
    [
        ("cnn", {"width": 0}, "width"),
        ("resnet20", {"width": "16"}, "width"),
        ("mlp", {"hidden": 64}, "hidden"),
        ("mlp", {"hidden": [64, -1]}, "hidden"),
    ],
)
def test_bad_option_value_is_a_spec_error(name: str, options: dict, option: str) -> None:
    with pytest.raises(SpecError) as err:
        build_model(name, (3, 32, 32), 10, options)
    assert err.value.field == f"student.options.{option}"
    assert "expected" in err.value.message


def test_teacher_arch_errors_point_at_teacher_fields() -> None:
    with pytest.raises(SpecError) as err:
        build_model("cnn", (3, 32, 32), 10, {"widht": 8}, field="teacher.arch")
    assert err.value.field == "teacher.arch_options"


@pytest.mark.parametrize("shape", [(20,), (2, 50)])
def test_mlp_takes_features_and_signals(shape: tuple[int, ...]) -> None:
    model = build_model("mlp", shape, 4, {"hidden": [16]}).eval()
    assert model(torch.randn(5, *shape)).shape == (5, 4)


@pytest.mark.parametrize(("name", "shape"), [("cnn", (20,)), ("resnet8", (2, 50))])
def test_conv_models_refuse_non_images(name: str, shape: tuple[int, ...]) -> None:
    with pytest.raises(SpecError) as err:
        build_model(name, shape, 4)
    assert err.value.field == "student.arch"
    assert "mlp" in err.value.message  # says which architecture would accept it
    assert str(shape) in err.value.message
    assert not model_kind_ok(name, shape)


def test_conv_models_refuse_images_smaller_than_8() -> None:
    with pytest.raises(SpecError, match="at least 8x8"):
        build_model("resnet8", (1, 4, 4), 10)
    assert model_kind_ok("mlp", (1, 4, 4))


def test_odd_image_sizes_and_channel_counts_work() -> None:
    model = build_model("resnet8", (5, 9, 13), 3).eval()
    assert model(torch.randn(2, 5, 9, 13)).shape == (2, 3)


def test_names_module_matches_the_registry() -> None:
    from akd_core.models.registry import _BUILDERS, _accepted_options

    assert available_models() == list(MODEL_NAMES)
    for name in MODEL_NAMES:  # the API checks option names without torch, from names.py
        assert set(ARCH_OPTIONS[name]) == set(_accepted_options(_BUILDERS[name])), name
    assert set(INPUT_KINDS) == set(MODEL_NAMES)
    for name, kinds in INPUT_KINDS.items():
        for kind, shape in (("image", (1, 8, 8)), ("features", (6,)), ("signal", (2, 7))):
            assert model_kind_ok(name, shape) == (kind in kinds), (name, kind)


def test_names_module_does_not_import_torch() -> None:
    code = "import sys, akd_core.models.names; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("classes", [2, 37])
def test_student_params_formula_equals_the_built_model(name: str, classes: int) -> None:
    """The torch-free formula the API uses at submit counts exactly what the builder makes."""
    from akd_core.models.names import student_params

    shapes = [(7,), (2, 11), (3, 8, 8)] if name == "mlp" else [(3, 32, 32), (1, 8, 8), (5, 9, 17)]
    variants = [{}, {"hidden": [5]}, {"hidden": []}, {"hidden": [300, 9, 4]}]
    if name != "mlp":
        variants = [{}, {"width": 3}, {"width": 24}]
    for shape in shapes:
        for options in variants:
            built = count_params(build_model(name, shape, classes, options))
            assert student_params(name, options, shape, classes) == built, (shape, options)


def test_student_params_of_huge_options_is_computed_without_building() -> None:
    from akd_core.models.names import student_params

    # The audit's 69 G-parameter MLP and resnet110 at width 1024: counted in microseconds.
    assert student_params("mlp", {"hidden": [65536] * 16}, (3, 32, 32), 10) > 6.4e10
    assert student_params("resnet110", {"width": 1024}, (3, 32, 32), 10) > 6e9
    with pytest.raises(SpecError, match="'width' of 'cnn'.*1 to 1024") as info:
        student_params("cnn", {"width": 4096}, (3, 32, 32), 10)
    assert info.value.field == "student.options.width"
