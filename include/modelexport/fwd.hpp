// modelexport/fwd.hpp — the public types, declared only, for headers that pass them by reference.
//
// A header that stores or takes an `export_options&` or returns a `validation_report` through a
// pointer needs no definition: including this instead of export.hpp or validator.hpp keeps it free
// of the exporter, the cache, ONNX's protobuf and nlohmann/json.
#pragma once

namespace modelexport {

// error.hpp: every failure is one of these, with its exit code.
class error;
class usage_error;
class model_not_found;
class config_missing;
class invalid_input;
class export_failed;
class validation_failed;
class io_error;
class package_modified;
class runtime_unavailable;
class reference_mismatch;
class variant_inaccurate;

// export_options.hpp, export.hpp: one export.
enum class strategy;
struct export_options;
struct export_hooks;
struct export_result;

// plan.hpp: what an export would write, without running it.
struct plan_options;
struct package_plan;

// validator.hpp: the checks of a package.
struct validate_options;
struct validation_report;

// tasks.hpp: the task table.
struct task_info;

// package/layout.hpp, cache/settings.hpp, export/source.hpp: values the options hold.
enum class package_layout;
struct cache_settings;
struct model_source;

}  // namespace modelexport
