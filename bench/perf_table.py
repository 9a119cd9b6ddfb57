#!/usr/bin/python3
"""One table of tapegrad against PyTorch 1.13 for the machine this runs on (issue 18):
rows  step crop 480 (UNet base 16, batch 4: forward, weighted CE, backward, SGD), step of the
      cpu preset (base 16, crop 256, batch 4), eval forward of a 584x565 image, cold (first)
      step / steady step, the cpu-preset step while `stress-ng --cpu 1` keeps one core busy,
      peak memory of the crop-480 step;
cols  tapegrad, PyTorch, tapegrad / PyTorch.
Once for the native instruction set and, on an AVX-512 CPU, once for AVX2 emulation: tapegrad
with `bench_unet_step --isa avx2` (3x3 conv kernels) and OPENBLAS_CORETYPE=Haswell, PyTorch
with ONEDNN_MAX_CPU_ISA=AVX2 and ATEN_CPU_CAPABILITY=avx2.
Every measurement runs each framework in its own process (bench_unet_step, and
bench/unet_step_torch.py --worker), the two alternating, the order swapped every round;
times are the best over rounds (each run: best of REPS steps after 2 warm-up steps).
Usage: /usr/bin/python3 bench/perf_table.py [build/bin/bench_unet_step] [rounds=3] [reps=2]
       (bench/perf_table.sh runs it; about 10 minutes on 2 idle Zen 4 cores)"""
import os
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH = [sys.executable, os.path.join(HERE, "unet_step_torch.py"), "--worker"]


def cpu_has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx512f" in f.read()
    except OSError:
        return False


def run(cmd, env):
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        sys.exit("perf_table: %s failed (exit %d):\n%s%s" % (" ".join(cmd), p.returncode, p.stdout, p.stderr))
    res = {"_wall": time.time() - t0}
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("train_step", "eval_584x565", "cold_step", "peak_mb"):
            res[parts[0]] = (float(parts[1]), float(parts[2]))
        elif line.startswith("#") and "threads" in line and "header" not in res:
            res["header"] = line.lstrip("# ")
    return res


def envs(isa):
    base = dict(os.environ)
    for k in ("TG_BLAS_REEXECUTED", "OMP_NUM_THREADS", "OPENBLAS_CORETYPE", "ONEDNN_MAX_CPU_ISA",
              "ATEN_CPU_CAPABILITY"):
        base.pop(k, None)
    tg, pt = dict(base), dict(base)
    if isa == "avx2":
        tg["OPENBLAS_CORETYPE"] = "Haswell"
        tg["ONEDNN_MAX_CPU_ISA"] = "AVX2"  # --isa avx2 caps it too (ops/conv_testing.h)
        pt["ONEDNN_MAX_CPU_ISA"] = "AVX2"
        pt["ATEN_CPU_CAPABILITY"] = "avx2"
    return tg, pt


class Stress:
    """One core kept busy by another process for the duration of a `with` block."""

    def __enter__(self):
        if shutil.which("stress-ng"):
            cmd = ["stress-ng", "--cpu", "1", "--cpu-method", "int64", "--quiet"]
        else:  # a busy loop
            cmd = [sys.executable, "-c", "while True: pass"]
        self.p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        os.killpg(self.p.pid, signal.SIGTERM)  # the group this script started (stress-ng's workers)
        self.p.wait()


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else "build/bin/bench_unet_step"
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    reps = str(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
    isas = ["native", "avx2"] if cpu_has_avx512() else ["native"]
    # (key, tapegrad arguments, torch arguments, loaded)
    big, small = os.environ.get("PERF_TABLE_CROPS", "480,256").split(",")  # smaller crops: a quick check of the script
    cases = [("480", [reps, "4", big, "16", "--no-eval"], [reps, "4", big, "16", "--no-eval"], False),
             ("cpu", [reps, "4", small, "16"], [reps, "4", small, "16"], False),
             ("load", [reps, "4", small, "16", "--no-eval"], [reps, "4", small, "16", "--no-eval"], True)]
    res = {}  # (isa, case, framework) -> list of runs
    headers = {}
    t_start = time.time()
    for r in range(rounds):
        for isa in isas:
            tg_env, pt_env = envs(isa)
            for key, tga, pta, loaded in cases:
                tcmd = [binary] + tga + (["--isa", "avx2"] if isa == "avx2" else [])
                pcmd = TORCH + pta
                order = [("tg", tcmd, tg_env), ("pt", pcmd, pt_env)]
                if r % 2:
                    order.reverse()
                for fw, cmd, env in order:
                    if loaded:
                        with Stress():
                            out = run(cmd, env)
                    else:
                        out = run(cmd, env)
                    res.setdefault((isa, key, fw), []).append(out)
                    headers.setdefault((isa, fw), out.get("header", ""))
        print("# round %d of %d done, %.0f s" % (r + 1, rounds, time.time() - t_start), file=sys.stderr, flush=True)
        if r + 1 < rounds:  # the table so far (the last one printed is the result)
            print_tables(res, headers, isas, r + 1, reps, t_start, partial=True)
    print_tables(res, headers, isas, rounds, reps, t_start)


def print_tables(res, headers, isas, rounds, reps, t_start, partial=False):
    def best(isa, key, fw, field, i=0):
        return min(o[field][i] for o in res[(isa, key, fw)])

    for isa in isas:
        print()
        title = "native instruction set" if isa == "native" else \
            "AVX2 emulation (tapegrad --isa avx2 + OPENBLAS_CORETYPE=Haswell; torch ONEDNN_MAX_CPU_ISA=AVX2)"
        print("## %s, %d alternating rounds, best of each (each run: best of %s steps)" % (title, rounds, reps))
        print("#  tapegrad: %s" % headers[(isa, "tg")])
        print("#  pytorch:  %s" % headers[(isa, "pt")])
        print("| %-44s | %16s | %16s | %7s | %s |" % ("", "tapegrad", "PyTorch", "tg/pt", "goal"))
        print("|%s|%s|%s|%s|%s|" % ("-" * 46, "-" * 18, "-" * 18, "-" * 9, "-" * 12))

        def row(name, a, b, unit, goal, fmt="%.0f"):
            print("| %-44s | %16s | %16s | %7.2f | %s |" % (name, (fmt % a) + unit, (fmt % b) + unit, a / b, goal))

        s480 = (best(isa, "480", "tg", "train_step"), best(isa, "480", "pt", "train_step"))
        scpu = (best(isa, "cpu", "tg", "train_step"), best(isa, "cpu", "pt", "train_step"))
        ev = (best(isa, "cpu", "tg", "eval_584x565"), best(isa, "cpu", "pt", "eval_584x565"))
        row("train step, batch 4, crop 480", s480[0], s480[1], " ms", "<= 0.60")
        row("train step, cpu preset (crop 256)", scpu[0], scpu[1], " ms", "<= 0.60")
        row("eval forward 584x565", ev[0], ev[1], " ms", "<= 0.80")
        c = (best(isa, "480", "tg", "cold_step"), best(isa, "480", "pt", "cold_step"))
        cr = (c[0] / s480[0], c[1] / s480[1])
        print("| %-44s | %16s | %16s | %7.2f | %s |" % ("cold first step, crop 480 (x steady step)",
              "%.0f ms (%.2fx)" % (c[0], cr[0]), "%.0f ms (%.2fx)" % (c[1], cr[1]), c[0] / c[1], "tg <= 1.50x"))
        ld = (best(isa, "load", "tg", "train_step"), best(isa, "load", "pt", "train_step"))
        print("| %-44s | %16s | %16s | %7.2f | %s |" % ("cpu-preset step, one core busy (x unloaded)",
              "%.0f ms (%.2fx)" % (ld[0], ld[0] / scpu[0]), "%.0f ms (%.2fx)" % (ld[1], ld[1] / scpu[1]),
              ld[0] / ld[1], "<= 0.80"))
        pk = (best(isa, "480", "tg", "peak_mb", 1), best(isa, "480", "pt", "peak_mb", 1))
        pp = (best(isa, "480", "tg", "peak_mb", 0), best(isa, "480", "pt", "peak_mb", 0))
        print("| %-44s | %16s | %16s | %7.2f | %s |" % ("memory of the crop-480 step (process peak)",
              "%.0f (%.0f) MB" % (pk[0], pp[0]),
              "%.0f (%.0f) MB" % (pk[1], pp[1]), pk[0] / pk[1], "<= 1.00"))
    print("\n# memory: ru_maxrss growth over the first step (process peak ru_maxrss in brackets);"
          " %s %.0f s" % ("so far" if partial else "total", time.time() - t_start), flush=True)


if __name__ == "__main__":
    main()
