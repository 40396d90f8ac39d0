"""`bitcycle rtlsim --build DIR --images N`: the compiled dataflow as one Verilator model, N test
images through it, DIR/rtlsim.json (see bitcycle.compile.rtlsim)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--build", required=True, help="a `bitcycle compile` output directory")
    parser.add_argument("--images", type=int, default=20, help="test images to stream through (default 20)")
    parser.add_argument("--dataset", default=None, choices=["digits", "fashion-mnist", "cifar10", "random"],
                        help="images (default: from the model's input shape)")
    parser.add_argument("--data-dir", default=None, help="data set directory")
    parser.add_argument("--seed", type=int, default=0, help="seed of the input gaps / output backpressure")
    parser.add_argument("--gap", type=float, default=0.3, help="probability of an idle input cycle")
    parser.add_argument("--backpressure", type=float, default=0.3, help="probability of an output stall cycle")
    parser.add_argument("--fifo-depth", type=int, default=32, help="FIFO beats between layers (power of two)")


def run(args) -> int:
    from bitcycle.compile.rtlsim import run as rtlsim
    from bitcycle.errors import BitCycleError

    if args.images < 1:
        raise BitCycleError(f"--images must be >= 1, got {args.images}")
    for name in ("gap", "backpressure"):
        if not 0 <= getattr(args, name) < 1:
            raise BitCycleError(f"--{name} must be in [0, 1), got {getattr(args, name)}")
    r = rtlsim(args.build, args.images, dataset=args.dataset, seed=args.seed, gap=args.gap, bp=args.backpressure,
               fifo_depth=args.fifo_depth, data_dir=args.data_dir)
    m = r["mismatches"]
    print(f"rtlsim {r['model']}: {r['images']} {r['dataset']} images, mismatches vs execute_onnx {m['vs_execute_onnx']}, "
          f"vs torch {m['vs_torch_integer_logits']} (top-1 {m['top1_vs_torch']})")
    print(f"  {r['cycles_per_image']:.1f} cycles/image (estimate {r['expected_cycles_per_image']}, "
          f"ratio {r['cycles_ratio']:.3f}), {r['images_per_s']:.0f} images/s at {r['clock_mhz']:g} MHz")
    print("| layer | PE | SIMD | bits | est. cycles/image | FIFO after |\n|---|---:|---:|---:|---:|---:|")
    for l in r["layers"]:
        print(f"| {l['name']} | {l['PE'] or ''} | {l['SIMD'] or ''} | {l['bits'] or ''} | {l['expected_cycles_per_image']} | "
              f"{l['fifo_depth_after'] or ''} |")
    print(f"  wrote {args.build}/rtlsim.json")
    bad = m["vs_execute_onnx"] + m["vs_torch_integer_logits"]
    if bad:
        raise BitCycleError(f"rtlsim: {bad} mismatching images; see {args.build}/rtlsim.json")
    return 0
