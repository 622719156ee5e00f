// modelexport — the generator CLI. A thin layer over the headers in
// include/modelexport/: it parses arguments, calls one function per
// subcommand (tools/commands.hpp), and maps errors to the documented exit codes.
#include "commands.hpp"
#include "modelexport/cache/settings.hpp"
#include "modelexport/error.hpp"
#include "modelexport/export/progress.hpp"
#include "modelexport/package/variant_names.hpp"
#include "modelexport/version.hpp"

#include <CLI/CLI.hpp>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <utility>

#ifndef MODELEXPORT_EXPORTER_SCRIPT
#define MODELEXPORT_EXPORTER_SCRIPT ""
#endif
#ifndef MODELEXPORT_RUNTIME_DIR
#define MODELEXPORT_RUNTIME_DIR ""
#endif
#ifndef MODELEXPORT_TASKS_FILE
#define MODELEXPORT_TASKS_FILE ""
#endif
#ifndef MODELEXPORT_DEFAULT_PYTHON
#define MODELEXPORT_DEFAULT_PYTHON "python3"
#endif

namespace me = modelexport;
namespace fs = std::filesystem;

namespace {

using tool::output_mode;

fs::path self_path() {
    std::error_code ec;
    auto p = fs::read_symlink("/proc/self/exe", ec);
    return ec ? fs::path() : p;
}

/// An installed file: $ENV, else <prefix>/share/modelexport/<name> beside the tool, else the build-time default.
fs::path locate(const char* env, const std::string& name, const std::string& built_in) {
    if (const char* e = std::getenv(env); e && *e) return e;
    fs::path installed = self_path().parent_path().parent_path() / "share" / "modelexport" / name;
    std::error_code ec;
    if (fs::exists(installed, ec)) return installed;
    return built_in;
}

std::string default_python() {
    if (const char* e = std::getenv("MODELEXPORT_PYTHON"); e && *e) return e;
    return MODELEXPORT_DEFAULT_PYTHON;
}

/// SIGINT, SIGTERM and SIGHUP during an export only set a flag (no SA_RESTART, so a
/// blocking wait returns EINTR): the process loop, copy loops, the lock wait and the
/// steps check it (detail/cancel.hpp), stop the exporter's process group, unwind (the
/// staging directory and lock are removed) and the export exits 128 + the signal.
extern "C" void on_stop_signal(int signo) {
    int none = 0;
    me::cancel::pending_signal.compare_exchange_strong(none, signo);
}

void install_stop_handlers() {
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;
    for (int s : {SIGINT, SIGTERM, SIGHUP}) {
        struct sigaction old {};
        ::sigaction(s, &sa, &old);
        if (old.sa_handler == SIG_IGN)
            ::sigaction(s, &old, nullptr);  // ignored by whoever started us (nohup, &): stays ignored
    }
}

/// --timeout: seconds as the user types them. A positive decimal number (fractions round
/// up); huge values clamp to about 100 years instead of overflowing; anything else,
/// including 0 and negative numbers, is a usage error.
std::chrono::seconds parse_timeout(const std::string& text) {
    std::size_t dot = text.find('.');
    std::string whole = text.substr(0, dot), frac = dot == std::string::npos ? "" : text.substr(dot + 1);
    auto digits = [](const std::string& s) { return s.find_first_not_of("0123456789") == std::string::npos; };
    if (text.empty() || (whole.empty() && frac.empty()) || !digits(whole) || !digits(frac))
        throw me::usage_error("--timeout", "'" + text + "' is not a number of seconds (a positive number, e.g. 600)");
    constexpr long long max_s = 100LL * 365 * 24 * 3600;
    long long s = 0;
    for (char c : whole) s = std::min(max_s, s * 10 + (c - '0'));
    if (frac.find_first_not_of('0') != std::string::npos && s < max_s) ++s;  // round up
    if (s == 0) throw me::usage_error("--timeout", "'" + text + "' is not a positive number of seconds");
    return std::chrono::seconds(s);
}

// Each subcommand below is a struct: its options (with their defaults), add_to() declaring them
// on the CLI, and run() doing the work once they are parsed, its errors thrown for main to print.

/// The export's options, one set for every subcommand that takes them: export all of them,
/// `cache key` those that enter the key (same defaults, so the key is the one export computes),
/// validate --reference the exporter's interpreter and script.
struct export_args {
    me::export_options eo = defaults();
    std::string strategy = "auto";
    std::string layout = "flat";

    static me::export_options defaults() {
        me::export_options eo;
        eo.cache = me::cache_settings::from_env();
        // The CLI stores and uploads a miss after it returned, in a detached process (§10), as
        // Bazel's --remote_cache_async; MODELEXPORT_CACHE_ASYNC=0 keeps them inside the command.
        const char* async = std::getenv("MODELEXPORT_CACHE_ASYNC");
        eo.cache.background = !(async && std::string(async) == "0");
        eo.python = default_python();
        eo.exporter_script = locate("MODELEXPORT_EXPORTER", "htp_exporter.py", MODELEXPORT_EXPORTER_SCRIPT);
        eo.tool_path = self_path();
        return eo;
    }

    /// --strategy and --layout as the library takes them (their texts were checked when parsed).
    void resolve() {
        eo.how = me::parse_strategy(strategy);
        eo.layout = me::parse_layout(layout);
    }
};

struct export_command {
    export_args& args;
    output_mode& mode;
    me::build_edge edge;
    std::string timeout = "1800";
    std::string variants;
    bool no_reference_check = false;
    bool no_cache = false;

    export_command(export_args& a, output_mode& m) : args(a), mode(m) {}

    CLI::App* add_to(CLI::App& app) {
        me::export_options& eo = args.eo;
        auto* ex = app.add_subcommand("export", "export a model source into a package directory");
        ex->add_option("source", eo.source, "local model directory or Hub id org/name[@revision] (offline cache)")
            ->required();
        ex->add_option("outdir", eo.output, "package directory to write (replaced atomically)")->required();
        ex->add_option("--task", eo.task, "Optimum task (default: from config.json architectures)");
        ex->add_option("--strategy", args.strategy,
                       "htp, prebuilt, command, or auto (prebuilt when the source has an ONNX file)")
            ->check(CLI::IsMember({"auto", "htp", "prebuilt", "command"}));
        ex->add_option("--model", eo.model_factory,
                       "htp without transformers: FILE.py:FACTORY building the torch module");
        ex->add_option("--library", eo.library,
                       "htp: transformers (default), or sentence-transformers: the checkpoint's pooling "
                       "too (modules.json), a sentence_embedding output (feature-extraction)")
            ->check(CLI::IsMember({"transformers", "sentence-transformers"}));
        ex->add_option("--python", eo.python, "interpreter with torch for the exporter (env MODELEXPORT_PYTHON)");
        ex->add_option("--exporter-script", eo.exporter_script, "the HTP exporter script (env MODELEXPORT_EXPORTER)");
        ex->add_option("--command", eo.command,
                       "command strategy: shell command with {source} and {output} placeholders");
        ex->add_option("--onnx-file", eo.onnx_file,
                       "prebuilt/command: ONNX file name to take (default model.onnx, onnx/model.onnx)");
        ex->add_option("--opset", eo.opset,
                       "ONNX opset for the torch exporter (default 14, raised up to 17 where an operator needs it)")
            ->check(CLI::Range(9, 20))
            ->each([&eo](const std::string&) { eo.opset_given = true; });
        ex->add_option("--atol", eo.atol,
                       "reference check: largest allowed |onnx - torch| beside 1e-5 * |torch| (default 1e-4, or "
                       "Optimum's larger one)")
            ->check(CLI::PositiveNumber);
        ex->add_flag("--no-reference-check", no_reference_check,
                     "do not compare the ONNX model with torch after the export (recorded as skipped)");
        ex->add_flag("--embed-hierarchy", eo.embed_hierarchy,
                     "write each node's hierarchy tag into its metadata_props");
        ex->add_flag("--torch-module", eo.include_torch_modules, "make plain torch.nn modules hierarchy levels too");
        ex->add_option("--layout", args.layout,
                       "flat (ONNX files at the package root, default) or hub (under onnx/, as Hub ONNX repositories)")
            ->check(CLI::IsMember({"flat", "hub"}));
        ex->add_option("--variants", variants,
                       "also write these variants of the ONNX files, measured against fp32: q8, int8, uint8, fp16, q4, "
                       "q4f16, ort (comma-separated)");
        ex->add_option("--variant-tolerance", eo.variant_tolerances,
                       "[VARIANT:]MEASURE=VALUE: another accuracy bound for --variants (cosine, argmax, greedy, "
                       "max_abs_diff); repeatable");
        ex->add_option("--timeout", timeout,
                       "seconds the whole export may take (exporter, copies, checks); default 1800");
        add_build_edge_options(ex);
        ex->add_option("--hf-hub-cache", eo.hub_cache,
                       "Hugging Face cache for Hub ids (default: HF_HUB_CACHE, HF_HOME/hub, ~/.cache/huggingface/hub)");
        ex->add_flag("--validate", eo.validate,
                     "validate the package before it replaces OUTDIR (errors fail the export)");
        ex->add_flag("--json", mode.json, "print export_metadata.json instead of the package path");
        ex->add_flag("--no-cache", no_cache,
                     "neither read nor write the export cache (MODELEXPORT_CACHE_DIR, MODELEXPORT_REMOTE_CACHE)");
        ex->footer("Example:\n  modelexport export ./tiny-bert pkg/bert --model modeling.py:build --embed-hierarchy");
        return ex;
    }

    /// What a build system adds to the export (export/build_edge.hpp).
    void add_build_edge_options(CLI::App* ex) {
        ex->add_option("--depfile", edge.depfile, "write a Make-style depfile of every input read");
        ex->add_option("--expect", edge.expect, "files the build declared; fail if the package differs")
            ->delimiter(',');
        ex->add_option("--keep", edge.keep,
                       "a build file that lives in OUTDIR beside the package (kept across exports)");
        ex->add_option("--report", edge.report,
                       "write a JSON report (timings, sizes, result) to this file, outside the package");
    }

    int run() {
        args.resolve();
        me::export_options& eo = args.eo;
        eo.timeout = parse_timeout(timeout);
        eo.cache.enabled = eo.cache.enabled && !no_cache;
        eo.reference_check = !no_reference_check;
        eo.variants = me::parse_variants(variants);
        if (!eo.variant_tolerances.empty() && eo.variants.empty())
            throw me::usage_error("--variant-tolerance", "needs --variants");
        install_stop_handlers();
        return tool::run_export(eo, edge, mode);
    }
};

struct validate_command {
    const export_args& exporter;  // --reference runs the export's interpreter and script
    output_mode& mode;
    fs::path dir, report;
    std::string task, runtime = "none", timeout = "300", reference;
    bool strict = false;
    me::runtime_config rcfg = runtime_defaults();
    CLI::Option* reference_option = nullptr;

    validate_command(const export_args& x, output_mode& m) : exporter(x), mode(m) {}

    static me::runtime_config runtime_defaults() {
        me::runtime_config c;
        c.python = default_python();
        c.scripts_dir = locate("MODELEXPORT_RUNTIME_DIR", "runtime", MODELEXPORT_RUNTIME_DIR);
        c.tasks_file = locate("MODELEXPORT_TASKS", "tasks.json", MODELEXPORT_TASKS_FILE);
        return c;
    }

    CLI::App* add_to(CLI::App& app) {
        auto* va = app.add_subcommand("validate", "check that a package loads for its task (Optimum compatibility)");
        va->add_option("dir", dir, "package directory")->required();
        va->add_option("--task", task, "task to validate for (default: from config.json)");
        va->add_flag("--strict", strict, "warnings fail too (what meson test uses)");
        va->add_option("--runtime", runtime, "auto, none, onnxruntime, transformers-js, optimum");
        va->add_option("--node", rcfg.node, "Node.js for the onnxruntime and transformers-js checks");
        va->add_option("--python", rcfg.python, "Python with optimum for --runtime optimum");
        va->add_option("--timeout", timeout,
                       "seconds each runtime check may take (default 300); past it the check fails");
        va->add_flag("--json", mode.json, "print one JSON object");
        reference_option = va->add_option(
            "--reference", reference,
            "also compare the package's outputs with this source's torch model (directory or Hub id), as export does");
        va->add_option("--report", report,
                       "also write the --json document to this file (runtime latency_ms, peak_rss_mb)");
        va->footer("Example:\n  modelexport validate pkg/bert --strict --runtime onnxruntime");
        return va;
    }

    int run() {
        if (reference_option->count() && reference.empty())
            throw me::usage_error(
                "--reference",
                "needs a model source (a directory or a Hub id); an empty one would skip the comparison");
        rcfg.timeout = parse_timeout(timeout);
        return tool::run_validate(dir, task, strict, runtime, rcfg, mode, report, reference, exporter.eo);
    }
};

struct inspect_command {
    output_mode& mode;
    fs::path path;
    std::string format = "text";

    explicit inspect_command(output_mode& m) : mode(m) {}

    CLI::App* add_to(CLI::App& app) {
        auto* in = app.add_subcommand("inspect", "print signature, task, files and the module hierarchy");
        in->add_option("path", path, "package directory or model.onnx")->required()->check(CLI::ExistingPath);
        in->add_option("--format", format, "text, json, dot (Graphviz) or graphml")
            ->check(CLI::IsMember({"text", "json", "dot", "graphml"}));
        in->add_flag("--json", mode.json, "print JSON (same as --format json)");
        in->footer(
            "Example:\n  modelexport inspect pkg/bert\n  modelexport inspect pkg/bert --format dot | dot -Tsvg > "
            "bert.svg");
        return in;
    }

    int run() { return tool::run_inspect(path, format, mode); }
};

struct verify_command {
    output_mode& mode;
    fs::path dir;
    std::vector<std::string> ignore;

    explicit verify_command(output_mode& m) : mode(m) {}

    CLI::App* add_to(CLI::App& app) {
        auto* vf = app.add_subcommand("verify", "check the package files against the hashes in export_metadata.json");
        vf->add_option("dir", dir, "package directory")->required();
        vf->add_option("--ignore", ignore,
                       "a build file kept in DIR on purpose (export --keep, the depfile); repeatable");
        vf->add_flag("--json", mode.json, "print JSON");
        vf->footer("Example:\n  modelexport verify pkg/bert");
        return vf;
    }

    int run() { return tool::run_verify(dir, ignore, mode); }
};

struct plan_command {
    me::plan_options po;
    std::string strategy = "auto", layout = "flat", variants;

    CLI::App* add_to(CLI::App& app) {
        auto* pl =
            app.add_subcommand("plan", "print, as JSON, the files an export of SOURCE will write (for build files)");
        pl->add_option("source", po.source, "local model directory or Hub id org/name[@revision] (offline cache)")
            ->required();
        pl->add_option("--task", po.task, "Optimum task (default: from config.json architectures)");
        pl->add_option("--strategy", strategy, "htp, prebuilt, command, or auto")
            ->check(CLI::IsMember({"auto", "htp", "prebuilt", "command"}));
        pl->add_option("--onnx-file", po.onnx_file, "prebuilt: ONNX file name to take");
        pl->add_option("--model", po.model_factory, "the export's --model (makes auto choose htp)");
        pl->add_option("--hf-hub-cache", po.hub_cache,
                       "Hugging Face cache for Hub ids (default: from the environment)");
        pl->add_option("--layout", layout, "the export's --layout: flat or hub (ONNX files listed as onnx/...)")
            ->check(CLI::IsMember({"flat", "hub"}));
        pl->add_option("--variants", variants, "the export's --variants: their files are listed too");
        pl->footer("Example:\n  modelexport plan acme/tiny-bert@v2 --hf-hub-cache ~/.cache/huggingface/hub");
        return pl;
    }

    int run() {
        po.how = me::parse_strategy(strategy);
        po.layout = me::parse_layout(layout);
        po.variants = me::parse_variants(variants);
        return tool::run_plan(po);
    }
};

/// bindings and embed: C++ generated from the package in DIR, in a namespace named after it unless given.
struct package_sources {
    fs::path dir;
    std::string ns;

    void add_namespace_option(CLI::App* sub) {
        sub->add_option("--namespace", ns, "C++ namespace (default: from the package directory name)");
    }
    std::string namespace_name() const { return ns.empty() ? tool::namespace_for(dir) : ns; }
};

struct bindings_command : package_sources {
    fs::path header, files_header;

    CLI::App* add_to(CLI::App& app) {
        auto* bi = app.add_subcommand("bindings", "generate a C++ header describing a package's model");
        bi->add_option("dir", dir, "package directory")->required();
        bi->add_option("--header", header, "header file to write")->required();
        add_namespace_option(bi);
        bi->add_option("--files-header", files_header,
                       "put files[] (sizes, SHA-256) in this header instead, so a tokenizer or weight edit leaves "
                       "--header as it was");
        bi->footer("Example:\n  modelexport bindings pkg/bert --header bert_model.hpp --namespace bert");
        return bi;
    }

    int run() { return tool::run_bindings(dir, namespace_name(), header, files_header); }
};

struct embed_command : package_sources {
    fs::path output, header;

    CLI::App* add_to(CLI::App& app) {
        auto* em = app.add_subcommand("embed", "generate sources that link model.onnx into a program");
        em->add_option("dir", dir, "package directory")->required();
        em->add_option("--output", output, "model_data.S (GNU as .incbin) or model_data.cpp (byte array)")->required();
        em->add_option("--header", header, "header declaring the bytes, their size and SHA-256")->required();
        add_namespace_option(em);
        em->footer(
            "Example:\n  modelexport embed pkg/bert --output bert_data.S --header bert_data.hpp --namespace bert");
        return em;
    }

    int run() { return tool::run_embed(dir, namespace_name(), output, header); }
};

struct pack_command {
    fs::path dir, output;

    CLI::App* add_to(CLI::App& app) {
        auto* pk = app.add_subcommand(
            "pack", "store a package's configuration files inside its model.onnx (one self-contained file)");
        pk->add_option("dir", dir, "package directory")->required();
        pk->add_option("--output", output, "the single-file model to write")->required();
        pk->footer("Example:\n  modelexport pack pkg/bert --output bert.onnx");
        return pk;
    }

    int run() { return tool::run_pack(dir, output); }
};

struct cache_command {
    export_args& args;  // `cache key`: the options that enter the key are the export's own
    output_mode& mode;
    std::string action, max_size;
    long wait_limit = 0;

    cache_command(export_args& a, output_mode& m) : args(a), mode(m) {}

    CLI::App* add_to(CLI::App& app) {
        me::export_options& eo = args.eo;
        auto* ca = app.add_subcommand(
            "cache", "the export cache: key SOURCE [options] | stats | prune [--max-size N] | clear | verify | wait");
        ca->add_option("action", action,
                       "key, stats, prune, clear, verify, or wait (for background stores and uploads to finish; the "
                       "others wait too)")
            ->required()
            ->check(CLI::IsMember({"key", "stats", "prune", "clear", "verify", "wait"}));
        ca->add_option("source", eo.source, "key: the model source");
        ca->add_option("--task", eo.task, "key: Optimum task");
        ca->add_option("--strategy", args.strategy, "key: htp, command or auto")
            ->check(CLI::IsMember({"auto", "htp", "prebuilt", "command"}));
        ca->add_option("--model", eo.model_factory, "key: FILE.py:FACTORY");
        ca->add_option("--library", eo.library, "key: transformers or sentence-transformers")
            ->check(CLI::IsMember({"transformers", "sentence-transformers"}));
        ca->add_option("--python", eo.python, "key: the exporter's interpreter");
        ca->add_option("--exporter-script", eo.exporter_script, "key: the HTP exporter script");
        ca->add_option("--command", eo.command, "key: the command strategy's command");
        ca->add_option("--onnx-file", eo.onnx_file, "key: the command's ONNX file name");
        ca->add_option("--opset", eo.opset, "key: ONNX opset")->each([&eo](const std::string&) {
            eo.opset_given = true;
        });
        ca->add_option("--max-size", max_size, "prune: size limit (default MODELEXPORT_CACHE_MAX_SIZE, else 10G)")
            ->check(CLI::Validator(  // given, it is a size: an empty one is not "the default"
                [](std::string& text) {
                    return me::parse_size(text) ? std::string() : "'" + text + "' is not a size (e.g. 500M, 10G)";
                },
                "SIZE"));
        ca->add_option("--timeout", wait_limit,
                       "wait: give up after this many seconds (the stores go on; exit 0 with a warning)")
            ->check(CLI::Validator(
                [](std::string& text) {
                    const bool digits =
                        !text.empty() && text.size() <= 12 && text.find_first_not_of("0123456789") == std::string::npos;
                    return digits ? std::string()
                                  : "'" + text + "' is not a number of seconds (a whole number, 0 or more, e.g. 600)";
                },
                "SECONDS"));
        ca->add_flag("--json", mode.json, "stats: print JSON");
        ca->footer(
            "Example:\n  modelexport cache key ./tiny-bert --model modeling.py:build\n  modelexport cache prune "
            "--max-size 2G\n"
            "  modelexport cache wait    # at the end of a CI job: the uploads are done");
        return ca;
    }

    int run() {
        args.resolve();
        if (action == "key" && args.eo.source.empty()) throw me::usage_error("cache key", "needs the model SOURCE");
        return tool::run_cache(action, args.eo, max_size, wait_limit, mode);
    }
};

struct unpack_command {
    fs::path file, outdir;

    CLI::App* add_to(CLI::App& app) {
        auto* up =
            app.add_subcommand("unpack", "restore a package directory from a packed model (byte-identical files)");
        up->add_option("file", file, "packed model")->required()->check(CLI::ExistingFile);
        up->add_option("outdir", outdir, "package directory to write")->required();
        up->footer("Example:\n  modelexport unpack bert.onnx pkg/bert");
        return up;
    }

    int run() { return tool::run_unpack(file, outdir); }
};

/// What applies before and after any subcommand: --version, -q/-v, the exit code table.
void add_global_options(CLI::App& app, output_mode& mode) {
    app.set_version_flag("--version", std::string("modelexport ") + me::version);
    app.require_subcommand(1);
    app.fallthrough();  // -q/-v also after the subcommand, as build files write them
    app.add_flag("-q,--quiet", mode.quiet, "no progress or results; errors and their hints still print");
    app.add_flag("-v,--verbose", mode.verbose, "show progress and the exporter's output even when not on a terminal");
    app.footer(
        "Exit codes: 0 ok, 1 internal error, 2 usage, 3 model not found, 4 config.json missing, 5 invalid input,\n"
        "6 export failed, 7 validation failed, 8 I/O error, 9 package modified (verify),\n"
        "10 runtime unavailable (validate --runtime X: X cannot start), 11 reference mismatch (export).");
}

/// A subcommand's run(), its errors printed as one line (and a hint) and turned into their exit codes.
int run_reporting_errors(const std::function<int()>& run) {
    try {
        return run();
    } catch (const me::error& e) {
        std::cerr << "modelexport: " << me::console_style::detect(false, false).red("error:") << " "
                  << me::printable(e.what()) << "\n";
        // The hint is part of the error, not progress: --quiet (what build systems pass) keeps it.
        if (!e.hint().empty()) std::cerr << "  hint: " << me::printable(e.hint()) << "\n";
        return static_cast<int>(e.code());
    } catch (const fs::filesystem_error& e) {
        std::cerr << "modelexport: error: " << me::printable(e.path1().string()) << ": " << e.code().message() << "\n";
        return static_cast<int>(me::exit_code::io_error);
    } catch (const std::exception& e) {
        std::cerr << "modelexport: error: internal: " << me::printable(e.what()) << "\n";
        return static_cast<int>(me::exit_code::internal);
    }
}

/// The exit code when parsing ends the run (--help, --version, a usage error); nullopt to go on.
std::optional<int> parse_arguments(CLI::App& app, int argc, char** argv) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        std::cerr << "modelexport: error: " << me::printable(e.what()) << "\n  run 'modelexport --help' for usage\n";
        return static_cast<int>(me::exit_code::usage);
    }
    return std::nullopt;
}

template <class Command>
std::pair<CLI::App*, std::function<int()>> add_command(CLI::App& app, Command& command) {
    return {command.add_to(app), [&command] { return command.run(); }};
}

}  // namespace

int main(int argc, char** argv) {
    // A file-size limit (RLIMIT_FSIZE) must fail the write with EFBIG (exit 8), not kill the tool.
    ::signal(SIGXFSZ, SIG_IGN);
    CLI::App app{"modelexport: export Hugging Face models to ONNX packages that Optimum and transformers.js load"};
    output_mode mode;
    add_global_options(app, mode);

    export_args exporter;
    export_command export_cmd(exporter, mode);
    validate_command validate_cmd(exporter, mode);
    inspect_command inspect_cmd(mode);
    verify_command verify_cmd(mode);
    plan_command plan_cmd;
    bindings_command bindings_cmd;
    embed_command embed_cmd;
    pack_command pack_cmd;
    cache_command cache_cmd(exporter, mode);
    unpack_command unpack_cmd;
    // Declared in the order --help lists them.
    const std::pair<CLI::App*, std::function<int()>> commands[] = {
        add_command(app, export_cmd), add_command(app, validate_cmd), add_command(app, inspect_cmd),
        add_command(app, verify_cmd), add_command(app, plan_cmd),     add_command(app, bindings_cmd),
        add_command(app, embed_cmd),  add_command(app, pack_cmd),     add_command(app, cache_cmd),
        add_command(app, unpack_cmd)};

    if (std::optional<int> done = parse_arguments(app, argc, argv)) return *done;
    for (const auto& [sub, run] : commands)
        if (*sub) return run_reporting_errors(run);
    return static_cast<int>(me::exit_code::internal);
}
