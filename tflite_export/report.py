"""What a `.tflite` model costs on a device, as data, JSON, Markdown or a table.

`tflite_export.inspect` fills a `ModelReport`; this module defines it and its
renderings. Everything is a frozen dataclass of plain values, so a report can be
compared, serialized with `ModelReport.to_json` and diffed between models.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from tflite_export.io_details import TensorIO

if TYPE_CHECKING:
    from tflite_export.cost.estimator import CostEstimate, LayerCost

__all__ = ["LayerReport", "ModelReport", "render_table", "print_report", "cost_summary"]


@dataclass(frozen=True)
class LayerReport:
    """One operator of the model.

    Attributes:
        index: operator index within its subgraph.
        subgraph: subgraph index (0 for the main graph).
        op: operator name, e.g. ``"CONV_2D"``; ``"CUSTOM:<code>"`` for custom ops.
        input_shapes: shape of each input (None for an omitted optional input).
        input_dtypes: dtype name of each input (None for an omitted input).
        output_shapes: shape of each output.
        output_dtypes: dtype name of each output.
        params: elements of the operator's weights and biases (constant inputs
            that are not shapes or axes; for convolutions and fully connected
            layers the weight and bias positions, even when a DECODE op makes them).
        param_bytes: flash bytes of those constants as stored in this model.
        macs: multiply-accumulates (see `tflite_export._ops_cost` for what counts).
        weight_shape: shape of the weight tensor of CONV_2D, DEPTHWISE_CONV_2D,
            FULLY_CONNECTED and TRANSPOSE_CONV; None for other ops.
        out_channels: output channels of that weight tensor; None otherwise.
        sparsity: fraction of weight elements that are exactly zero (the
            quantized value equals the zero point); None when the weights are
            not constants in this model.
        zero_channels: output channels whose weights are all zero; None as for
            ``sparsity``.
        per_channel: the weights are quantized with one scale per channel.
        tflm_supported: TFLM has a kernel for the operator.
        cost: estimated instructions, cycles, ms and µJ on the device
            `tflite_export.inspect` was given (``device=``), or None.
    """

    index: int
    subgraph: int
    op: str
    input_shapes: tuple[tuple[int, ...] | None, ...]
    input_dtypes: tuple[str | None, ...]
    output_shapes: tuple[tuple[int, ...], ...]
    output_dtypes: tuple[str, ...]
    params: int
    param_bytes: int
    macs: int
    weight_shape: tuple[int, ...] | None
    out_channels: int | None
    sparsity: float | None
    zero_channels: int | None
    per_channel: bool
    tflm_supported: bool
    cost: LayerCost | None = None


@dataclass(frozen=True)
class ModelReport:
    """Size, compute and deployability of one `.tflite` model.

    Attributes:
        flash_bytes: size of the flatbuffer (what the device stores).
        weight_bytes: bytes of constant buffers holding weights and biases
            (each buffer counted once).
        overhead_bytes: ``flash_bytes - weight_bytes``: graph structure, names,
            quantization parameters, shape constants, metadata.
        params: weight and bias elements over all operators (each tensor once).
        macs: multiply-accumulates of one inference.
        arena_bytes: tensor arena TFLM allocated on this host, or None when the
            report was made with ``measure=False``.
        arena_emitted_bytes: arena size to put in firmware (host figure plus
            kernel scratch bound and margin), or None as above.
        ops: distinct operator names in first-use order.
        op_counts: how many times each operator occurs.
        layers: one `LayerReport` per operator, in execution order.
        inputs: the model inputs with their quantization.
        outputs: the model outputs with their quantization.
        tflm_supported: every operator has a TFLM kernel.
        unsupported_ops: operators TFLM cannot run (empty when supported).
        weight_sparsity: fraction of zeros over the weight tensors of
            convolution and fully connected layers (biases excluded); 0.0 when
            the model has none.
        cost: the `tflite_export.cost.CostEstimate` on the device
            `tflite_export.inspect` was given (``device=``), or None.
    """

    flash_bytes: int
    weight_bytes: int
    overhead_bytes: int
    params: int
    macs: int
    arena_bytes: int | None
    arena_emitted_bytes: int | None
    ops: tuple[str, ...]
    op_counts: dict[str, int]
    layers: tuple[LayerReport, ...]
    inputs: tuple[TensorIO, ...]
    outputs: tuple[TensorIO, ...]
    tflm_supported: bool
    unsupported_ops: tuple[str, ...]
    weight_sparsity: float
    cost: CostEstimate | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (tuples become lists once serialized).

        Example:
            >>> import tflite_export
            >>> d = tflite_export.inspect(tflite_export.testing.tiny_model(), measure=False).to_dict()
            >>> d["ops"], d["macs"]
            (('FULLY_CONNECTED',), 56)
        """
        d = asdict(self)
        if self.cost is not None:
            d["cost"] = self.cost.to_dict()
        return d

    def to_json(self, indent: int | None = 2) -> str:
        """The report as JSON text with sorted keys (stable for diffs).

        Args:
            indent: spaces per indentation level; None for one line. Default 2.

        Returns:
            The JSON text.

        Example:
            >>> import json, tflite_export
            >>> r = tflite_export.inspect(tflite_export.testing.tiny_model(), measure=False)
            >>> json.loads(r.to_json())["flash_bytes"] == r.flash_bytes
            True
        """
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    def sparsity_summary(self) -> list[dict[str, Any]]:
        """Per-layer weight sparsity and channel counts, for pruning reports.

        Returns:
            One dictionary per layer that has a weight tensor, with keys
            ``index``, ``op``, ``weight_shape``, ``out_channels``,
            ``zero_channels``, ``sparsity`` and ``per_channel``.

        Example:
            >>> import tflite_export
            >>> r = tflite_export.inspect(tflite_export.testing.tiny_model(), measure=False)
            >>> [row["out_channels"] for row in r.sparsity_summary()]
            [8, 3]
        """
        keys = ("index", "op", "weight_shape", "out_channels", "zero_channels",
                "sparsity", "per_channel")
        return [{k: getattr(layer, k) for k in keys}
                for layer in self.layers if layer.weight_shape is not None]

    def to_markdown(self) -> str:
        """The report as Markdown: a summary table, then one row per operator.

        Returns:
            Markdown text ending with a newline.

        Example:
            >>> import tflite_export
            >>> r = tflite_export.inspect(tflite_export.testing.tiny_model(), measure=False)
            >>> print(r.to_markdown().splitlines()[6])
            | MACs | 56 |
        """
        lines = ["| quantity | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in _summary_rows(self)]
        cost = self.cost is not None
        lines += ["", "| # | op | inputs | outputs | params | param bytes | MACs | out ch | sparsity |"
                  + (" est. cycles | est. ms | est. µJ |" if cost else ""),
                  "|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if cost else "")]
        for layer in self.layers:
            cells = _layer_cells(layer) + (_cost_cells(layer.cost) if cost else [])
            lines.append("| " + " | ".join(cells) + " |")
        if cost:
            lines += ["", f"Estimated on {self.cost.device.name}, not measured: {self.cost.source}. "
                      "Per-layer figures exclude the interpreter's own work, which the totals include."]
        return "\n".join(lines) + "\n"


def _shape_text(shape: tuple[int, ...] | None, dtype: str | None) -> str:
    if shape is None:
        return "-"
    return f"{dtype}[{'x'.join(str(d) for d in shape)}]"


def _io_text(t: TensorIO) -> str:
    quant = f" scale={t.scale:.6g} zp={t.zero_point}" if t.quantized else ""
    return f"{_shape_text(t.shape, t.dtype)}{quant}"


def _pm(rel: float | None) -> str:
    return "" if rel is None else f" ± {rel:.0%}"


def _cost_cells(cost: LayerCost | None) -> list[str]:
    """Estimated cycles, ms and µJ of one layer (``no data`` when unknown, ``-`` when not estimated)."""
    if cost is None:
        return ["-", "-", "-"]
    if not cost.known:
        return ["no data", "no data", "no data"]
    uj = "-" if cost.uj is None else f"{cost.uj:.3g}{_pm(cost.uj_rel_error)}"
    return [f"{cost.cycles:.3g}", f"{cost.ms:.3g}{_pm(cost.rel_error)}", uj]


def _est_ms(cost: LayerCost | None) -> str:
    """A layer's estimated ms for the terminal table (its ± is in the caption and report.md)."""
    if cost is None:
        return "-"
    return f"{cost.ms:.3g}" if cost.known else "no data"


def cost_summary(cost: CostEstimate) -> list[tuple[str, str]]:
    """Summary rows of an estimate: latency, energy and what they rest on, each labelled.

    Args:
        cost: the estimate.

    Returns:
        (quantity, text) pairs.
    """
    excluded = f"; excludes {', '.join(cost.unknown_ops)} (no data)" if cost.unknown_ops else ""
    d = cost.device
    energy = ("unknown (no active power for the device)" if cost.total_uj is None else
              f"{cost.total_uj:.4g} µJ{_pm(cost.uj_rel_error)} (estimated, {d.active_mw:g} mW "
              f"from {d.active_mw_source})")
    return [
        ("device", f"{d.name} ({d.core}, {d.mhz:g} MHz, {d.kernels} kernels)"),
        ("latency", f"{cost.total_ms:.4g} ms{_pm(cost.rel_error)} (estimated, "
                    f"{cost.total_cycles:.4g} cycles{excluded})"),
        ("energy", energy + excluded),
        ("estimated from", cost.source),
    ]


def _summary_rows(r: ModelReport) -> list[tuple[str, str]]:
    arena = "not measured" if r.arena_bytes is None else (
        f"{r.arena_bytes} B (firmware: {r.arena_emitted_bytes} B)")
    ops = ", ".join(f"{op} x{r.op_counts[op]}" for op in r.ops)
    unsupported = ", ".join(r.unsupported_ops)
    return [
        ("flash", f"{r.flash_bytes} B"),
        ("weights", f"{r.weight_bytes} B"),
        ("overhead", f"{r.overhead_bytes} B"),
        ("params", str(r.params)),
        ("MACs", str(r.macs)),
        ("arena", arena),
        ("weight sparsity", f"{r.weight_sparsity:.1%}"),
        ("ops", ops or "-"),
        ("inputs", "; ".join(_io_text(t) for t in r.inputs)),
        ("outputs", "; ".join(_io_text(t) for t in r.outputs)),
        ("TFLM", "supported" if r.tflm_supported else f"unsupported ops: {unsupported}"),
    ] + ([] if r.cost is None else [(k if k in ("device", "estimated from") else f"est. {k}", v)
                                    for k, v in cost_summary(r.cost)])


def _layer_cells(layer: LayerReport) -> list[str]:
    ins = ", ".join(_shape_text(s, d) for s, d in zip(layer.input_shapes, layer.input_dtypes))
    outs = ", ".join(_shape_text(s, d) for s, d in zip(layer.output_shapes, layer.output_dtypes))
    op = layer.op if layer.tflm_supported else f"{layer.op} (no TFLM kernel)"
    index = str(layer.index) if layer.subgraph == 0 else f"{layer.subgraph}:{layer.index}"
    return [
        index, op, ins, outs, str(layer.params), str(layer.param_bytes), str(layer.macs),
        "-" if layer.out_channels is None else str(layer.out_channels),
        "-" if layer.sparsity is None else f"{layer.sparsity:.1%}",
    ]


def render_table(report: ModelReport):
    """Build a `rich` table of the report: a row per operator and a total row.

    Args:
        report: the report to render.

    Returns:
        A ``rich.table.Table`` whose caption holds flash, weights, arena and
        TFLM support, and the estimated latency and energy with their errors
        when the report has a cost estimate (then an ``est. ms`` column in
        place of ``out ch``).

    Example:
        >>> import tflite_export
        >>> from tflite_export.report import render_table
        >>> table = render_table(tflite_export.inspect(tflite_export.testing.tiny_model(), measure=False))
        >>> table.row_count
        3
    """
    from rich.table import Table

    cost = report.cost
    caption = [f"{k}: {v}" for k, v in _summary_rows(report) if k in
               ("flash", "weights", "overhead", "arena", "weight sparsity", "TFLM")]
    if cost is not None:
        energy = "" if cost.total_uj is None else f", {cost.total_uj:.3g} µJ{_pm(cost.uj_rel_error)}"
        caption.append(f"estimated on {cost.device.name}: {cost.total_ms:.3g} ms"
                       f"{_pm(cost.rel_error)}{energy}"
                       + (f", excluding {', '.join(cost.unknown_ops)}" if cost.unknown_ops else ""))
    table = Table(title="Model report", caption=" | ".join(caption))
    # Fits an 80-column terminal: the output shape stands for the activations
    # (inputs are the previous row's output); the Markdown report has them all.
    # With an estimate, its ms column takes the place of the output channels.
    numbers = ("params", "bytes", "MACs") + (("sparsity", "est. ms") if cost else ("out ch", "sparsity"))
    table.add_column("#", justify="right")
    table.add_column("op", no_wrap=True)
    table.add_column("output", no_wrap=True)
    for name in numbers:
        table.add_column(name, justify="right", no_wrap=True)
    for layer in report.layers:
        cells = _layer_cells(layer)
        outs = " ".join("x".join(str(d) for d in s) if s is not None else "-"
                        for s in layer.output_shapes)
        tail = [cells[8], _est_ms(layer.cost)] if cost else cells[7:9]
        table.add_row(cells[0], cells[1], outs, *cells[4:7], *tail)
    table.add_section()
    total = [f"{report.weight_sparsity:.1%}", f"{cost.total_ms:.3g}"] if cost else [
        "", f"{report.weight_sparsity:.1%}"]
    table.add_row("", "total", "", str(report.params), str(report.weight_bytes),
                  str(report.macs), *total)
    return table


def print_report(report: ModelReport, console=None) -> None:
    """Print the report's table to a `rich` console.

    Args:
        report: the report to print.
        console: a ``rich.console.Console``. Default None: a new console on stdout.

    Returns:
        None.

    Example:
        >>> import io, tflite_export
        >>> from rich.console import Console
        >>> out = io.StringIO()
        >>> print_report(tflite_export.inspect(tflite_export.testing.tiny_model(), measure=False),
        ...              Console(file=out, width=120))
        >>> "FULLY_CONNECTED" in out.getvalue()
        True
    """
    if console is None:
        from rich.console import Console

        console = Console()
    console.print(render_table(report))
