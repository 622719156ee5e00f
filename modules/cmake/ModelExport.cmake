# ModelExport.cmake — the Meson template's two functions for CMake consumers.
#
#   include(ModelExport)   # with this folder on CMAKE_MODULE_PATH
#   modelexport_add_package(bert SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/bert MODEL modeling.py:build)
#   modelexport_add_bindings(bert HEADER ${CMAKE_CURRENT_BINARY_DIR}/bert_model.hpp NAMESPACE bert)
#
# modelexport_add_package(NAME SOURCE dir-or-hub-id [MODEL file.py:factory] [TASK t] [STRATEGY s]
#                         [LIBRARY sentence-transformers] [LAYOUT flat|hub] [VARIANTS q8 fp16 ort ...] [FILES f...] [ARGS a...] [DEPENDS t...]
#                         [INSTALL] [INSTALL_DIR dir])
#   Declares the package's files as outputs of one custom command (with a depfile naming every
#   input the export read), a target NAME_package building it, the tests NAME_validate
#   (`modelexport validate --strict --runtime auto`) and NAME_verify (`modelexport verify`: the
#   built package is still the exported one) when the project called enable_testing(), and sets
#   in the caller's scope NAME_PACKAGE_DIR and NAME_PACKAGE_FILES. Without FILES, the file list
#   comes from `modelexport plan` at configure time (local directories and Hub ids alike, offline),
#   and every file plan read (a Hub ref, the source directory) makes CMake reconfigure when it
#   changes; the tool fails the build if the source no longer matches, until CMake reconfigures.
#   LAYOUT hub puts the ONNX files under onnx/ (NAME_PACKAGE_FILES then lists ${dir}/onnx/model.onnx;
#   an explicit FILES list names them so too); the default is flat. INSTALL installs the package's
#   files (not the depfile or bindings) to INSTALL_DIR, default ${CMAKE_INSTALL_DATADIR}/models/NAME;
#   INSTALL_DIR alone implies INSTALL. VARIANTS passes --variants to plan and export: each variant
#   file (model_quantized.onnx, model.ort, ...; docs/variants.md) is a declared output. LIBRARY
#   sentence-transformers exports the checkpoint's pooling too (export --library; docs/cli.md).
# modelexport_add_bindings(NAME HEADER file NAMESPACE ns [FILES_HEADER file])
#   Generates the C++ header describing the package's model (an encoder-decoder package: a nested
#   namespace per ONNX file); call it after modelexport_add_package(NAME ...). FILES_HEADER puts
#   files[] (sizes, hashes) in a second header, so a tokenizer or weight edit recompiles only the
#   code that includes it.
#
# The tool is MODELEXPORT_EXECUTABLE (found on PATH unless set; find_package(modelexport CONFIG)
# sets it to the installed tool and includes this file). Hub ids resolve in MODELEXPORT_HF_HUB_CACHE,
# a cache variable fixed when the build is first configured (as Meson's -Dmodelexport:hf_hub_cache):
# plan and every export are told it, so an automatic reconfigure after a moved ref, or ninja run
# with another environment, uses the same cache.

if(NOT MODELEXPORT_EXECUTABLE)
  find_program(MODELEXPORT_EXECUTABLE modelexport REQUIRED)
endif()
include(GNUInstallDirs)

# huggingface_hub's precedence, read from the environment of the first configure.
if(DEFINED ENV{HF_HUB_CACHE} AND NOT "$ENV{HF_HUB_CACHE}" STREQUAL "")
  set(_modelexport_hub_default "$ENV{HF_HUB_CACHE}")
elseif(DEFINED ENV{HF_HOME} AND NOT "$ENV{HF_HOME}" STREQUAL "")
  set(_modelexport_hub_default "$ENV{HF_HOME}/hub")
elseif(DEFINED ENV{XDG_CACHE_HOME} AND NOT "$ENV{XDG_CACHE_HOME}" STREQUAL "")
  set(_modelexport_hub_default "$ENV{XDG_CACHE_HOME}/huggingface/hub")
else()
  set(_modelexport_hub_default "$ENV{HOME}/.cache/huggingface/hub")
endif()
set(MODELEXPORT_HF_HUB_CACHE "${_modelexport_hub_default}" CACHE PATH
    "Hugging Face cache for Hub-id models (default: HF_HUB_CACHE, HF_HOME/hub, XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub at the first configure)")

# The optional package files, from the table the C++ code includes (source tree or installed layout).
set(_modelexport_table "")
foreach(_candidate "${CMAKE_CURRENT_LIST_DIR}/../../include/modelexport/package/files.def"
                   "${CMAKE_CURRENT_LIST_DIR}/../../../../include/modelexport/package/files.def")
  if(EXISTS "${_candidate}" AND NOT _modelexport_table)
    set(_modelexport_table "${_candidate}")
  endif()
endforeach()
if(NOT _modelexport_table)
  message(FATAL_ERROR "ModelExport.cmake: cannot find include/modelexport/package/files.def next to this module")
endif()
file(STRINGS "${_modelexport_table}" _modelexport_rows REGEX "^MODELEXPORT_PACKAGE_FILE\\(\".*\", (model|config|tokenizer|processor|generation|metadata), false\\)$")
set(MODELEXPORT_OPTIONAL_FILES "")
foreach(_row IN LISTS _modelexport_rows)
  string(REGEX REPLACE "^MODELEXPORT_PACKAGE_FILE\\(\"([^\"]+)\".*" "\\1" _name "${_row}")
  if(NOT _name STREQUAL "export_metadata.json")
    list(APPEND MODELEXPORT_OPTIONAL_FILES "${_name}")
  endif()
endforeach()

# The package's file list from `modelexport plan SOURCE OPTIONS` (run at configure time, offline);
# the files it read become configure dependencies.
function(_modelexport_plan SOURCE OPTIONS OUT)
  execute_process(COMMAND "${MODELEXPORT_EXECUTABLE}" plan "${SOURCE}" ${OPTIONS}
                  OUTPUT_VARIABLE plan ERROR_VARIABLE error RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(STRIP "${error}" error)
    message(FATAL_ERROR "modelexport plan ${SOURCE} failed (exit ${rc}):\n${error}")
  endif()
  set(files "")
  string(JSON n LENGTH "${plan}" files)
  math(EXPR last "${n} - 1")
  foreach(i RANGE ${last})
    string(JSON f GET "${plan}" files ${i})
    list(APPEND files "${f}")
  endforeach()
  string(JSON n LENGTH "${plan}" read)
  if(n GREATER 0)
    math(EXPR last "${n} - 1")
    foreach(i RANGE ${last})
      string(JSON f GET "${plan}" read ${i})
      set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${f}")
    endforeach()
  endif()
  set(${OUT} "${files}" PARENT_SCOPE)
endfunction()

function(modelexport_add_package NAME)
  cmake_parse_arguments(ME "INSTALL" "SOURCE;MODEL;TASK;STRATEGY;LIBRARY;LAYOUT;INSTALL_DIR" "FILES;ARGS;DEPENDS;VARIANTS" ${ARGN})
  if(NOT ME_SOURCE)
    message(FATAL_ERROR "modelexport_add_package(${NAME}): SOURCE is required")
  endif()
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/${NAME}")
  set(options --hf-hub-cache "${MODELEXPORT_HF_HUB_CACHE}")
  if(ME_MODEL)
    list(APPEND options --model "${ME_MODEL}")
  endif()
  if(ME_TASK)
    list(APPEND options --task "${ME_TASK}")
  endif()
  if(ME_STRATEGY)
    list(APPEND options --strategy "${ME_STRATEGY}")
  endif()
  if(ME_LAYOUT)
    list(APPEND options --layout "${ME_LAYOUT}")  # plan lists the files where export writes them
  endif()
  if(ME_VARIANTS)
    list(JOIN ME_VARIANTS "," variants)
    list(APPEND options --variants "${variants}")  # plan lists the variant files too (docs/variants.md)
  endif()
  if(ME_FILES)
    set(files ${ME_FILES})
  else()
    _modelexport_plan("${ME_SOURCE}" "${options}" files)
  endif()
  set(outputs "")
  foreach(f IN LISTS files)
    list(APPEND outputs "${dir}/${f}")
  endforeach()
  list(JOIN files "," expect)
  set(args --quiet --depfile "${dir}/${NAME}-package.d" --expect "${expect}" ${options})
  if(ME_LIBRARY)
    list(APPEND args --library "${ME_LIBRARY}")  # the export's alone: it changes no file name
  endif()
  list(APPEND args --keep "${NAME}_model.hpp" ${ME_ARGS})
  add_custom_command(
    OUTPUT ${outputs}
    COMMAND "${MODELEXPORT_EXECUTABLE}" export "${ME_SOURCE}" "${dir}" ${args}
    DEPFILE "${dir}/${NAME}-package.d"
    DEPENDS ${ME_DEPENDS}
    COMMENT "Exporting model package ${NAME}"
    VERBATIM)
  add_custom_target(${NAME}_package ALL DEPENDS ${outputs})
  if(ME_INSTALL OR ME_INSTALL_DIR)
    if(NOT ME_INSTALL_DIR)
      set(ME_INSTALL_DIR "${CMAKE_INSTALL_DATADIR}/models/${NAME}")
    endif()
    foreach(f IN LISTS files)
      get_filename_component(sub "${f}" DIRECTORY)  # onnx/ in the hub layout
      install(FILES "${dir}/${f}" DESTINATION "${ME_INSTALL_DIR}/${sub}")
    endforeach()
  endif()
  # Registered only where testing is on (add_test is a no-op without enable_testing()).
  add_test(NAME ${NAME}_validate COMMAND "${MODELEXPORT_EXECUTABLE}" validate "${dir}" --strict --runtime auto)
  add_test(NAME ${NAME}_verify COMMAND "${MODELEXPORT_EXECUTABLE}" verify "${dir}"
           --ignore "${NAME}-package.d" --ignore "${NAME}_model.hpp")
  # For modelexport_add_bindings, which reads every ONNX file (an encoder-decoder has several).
  set_property(GLOBAL PROPERTY _MODELEXPORT_${NAME}_FILES "${outputs}")
  set(${NAME}_PACKAGE_DIR "${dir}" PARENT_SCOPE)
  set(${NAME}_PACKAGE_FILES "${outputs}" PARENT_SCOPE)
endfunction()

function(modelexport_add_bindings NAME)
  cmake_parse_arguments(ME "" "HEADER;NAMESPACE;FILES_HEADER" "" ${ARGN})
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/${NAME}")
  # Without NAMESPACE the tool derives a valid one from the package directory's name.
  set(bindings_args "")
  if(ME_NAMESPACE)
    set(bindings_args --namespace "${ME_NAMESPACE}")
  endif()
  # The files the header is generated from: every ONNX file (one namespace each; under onnx/ in the
  # hub layout), config.json and export_metadata.json, as modelexport_add_package(NAME) declared them.
  get_property(files GLOBAL PROPERTY _MODELEXPORT_${NAME}_FILES)
  set(inputs "")
  foreach(f IN LISTS files)
    if(f MATCHES "\\.onnx$" OR f MATCHES "/(config|export_metadata)\\.json$")
      list(APPEND inputs "${f}")
    endif()
  endforeach()
  if(NOT inputs)
    message(FATAL_ERROR "modelexport_add_bindings(${NAME}): call modelexport_add_package(${NAME} ...) first")
  endif()
  set(headers "${ME_HEADER}")  # and the files header, when asked for
  if(ME_FILES_HEADER)
    list(APPEND bindings_args --files-header "${ME_FILES_HEADER}")
    list(APPEND headers "${ME_FILES_HEADER}")
  endif()
  add_custom_command(
    OUTPUT ${headers}
    COMMAND "${MODELEXPORT_EXECUTABLE}" bindings "${dir}" --header "${ME_HEADER}" ${bindings_args}
    DEPENDS ${inputs}
    COMMENT "Generating ${ME_HEADER}"
    VERBATIM)
  add_custom_target(${NAME}_bindings DEPENDS ${headers})
endfunction()
