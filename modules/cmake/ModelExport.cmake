# ModelExport.cmake — the Meson template's two functions for CMake consumers.
#
#   include(ModelExport)   # with this folder on CMAKE_MODULE_PATH
#   modelexport_add_package(bert SOURCE ${CMAKE_CURRENT_SOURCE_DIR}/bert MODEL modeling.py:build)
#   modelexport_add_bindings(bert HEADER ${CMAKE_CURRENT_BINARY_DIR}/bert_model.hpp NAMESPACE bert)
#
# modelexport_add_package(NAME SOURCE dir-or-hub-id [MODEL file.py:factory] [TASK t] [STRATEGY s]
#                         [FILES f...] [ARGS a...] [DEPENDS t...])
#   Declares the package's files as outputs of one custom command (with a depfile naming every
#   input the export read), a target NAME_package building it, and sets in the caller's scope
#   NAME_PACKAGE_DIR and NAME_PACKAGE_FILES. Which optional files exist is decided at configure
#   time from the source (pass FILES for generated sources or Hub ids); the tool fails the build
#   when the source no longer matches, until CMake reconfigures.
# modelexport_add_bindings(NAME HEADER file NAMESPACE ns)
#   Generates the C++ header describing the package's model.
#
# The tool is MODELEXPORT_EXECUTABLE (found on PATH unless set; find_package(modelexport CONFIG)
# sets it to the installed tool and includes this file).

if(NOT MODELEXPORT_EXECUTABLE)
  find_program(MODELEXPORT_EXECUTABLE modelexport REQUIRED)
endif()

# The optional package files, from the table the C++ code includes (source tree or installed layout).
set(_modelexport_table "")
foreach(_candidate "${CMAKE_CURRENT_LIST_DIR}/../../include/modelexport/package_files.def"
                   "${CMAKE_CURRENT_LIST_DIR}/../../../../include/modelexport/package_files.def")
  if(EXISTS "${_candidate}" AND NOT _modelexport_table)
    set(_modelexport_table "${_candidate}")
  endif()
endforeach()
if(NOT _modelexport_table)
  message(FATAL_ERROR "ModelExport.cmake: cannot find include/modelexport/package_files.def next to this module")
endif()
file(STRINGS "${_modelexport_table}" _modelexport_rows REGEX "^MODELEXPORT_PACKAGE_FILE\\(\".*\", .*, false\\)$")
set(MODELEXPORT_OPTIONAL_FILES "")
foreach(_row IN LISTS _modelexport_rows)
  string(REGEX REPLACE "^MODELEXPORT_PACKAGE_FILE\\(\"([^\"]+)\".*" "\\1" _name "${_row}")
  if(NOT _name STREQUAL "export_metadata.json")
    list(APPEND MODELEXPORT_OPTIONAL_FILES "${_name}")
  endif()
endforeach()

function(modelexport_add_package NAME)
  cmake_parse_arguments(ME "" "SOURCE;MODEL;TASK;STRATEGY" "FILES;ARGS;DEPENDS" ${ARGN})
  if(NOT ME_SOURCE)
    message(FATAL_ERROR "modelexport_add_package(${NAME}): SOURCE is required")
  endif()
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/${NAME}")
  if(ME_FILES)
    set(files ${ME_FILES})
  else()
    set(files model.onnx config.json)
    foreach(f IN LISTS MODELEXPORT_OPTIONAL_FILES)
      if(EXISTS "${ME_SOURCE}/${f}")
        list(APPEND files "${f}")
      endif()
    endforeach()
    list(APPEND files export_metadata.json)
  endif()
  set(outputs "")
  foreach(f IN LISTS files)
    list(APPEND outputs "${dir}/${f}")
  endforeach()
  list(JOIN files "," expect)
  set(args --quiet --depfile "${dir}/${NAME}-package.d" --expect "${expect}")
  if(ME_MODEL)
    list(APPEND args --model "${ME_MODEL}")
  endif()
  if(ME_TASK)
    list(APPEND args --task "${ME_TASK}")
  endif()
  if(ME_STRATEGY)
    list(APPEND args --strategy "${ME_STRATEGY}")
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
  set(${NAME}_PACKAGE_DIR "${dir}" PARENT_SCOPE)
  set(${NAME}_PACKAGE_FILES "${outputs}" PARENT_SCOPE)
endfunction()

function(modelexport_add_bindings NAME)
  cmake_parse_arguments(ME "" "HEADER;NAMESPACE" "" ${ARGN})
  set(dir "${CMAKE_CURRENT_BINARY_DIR}/${NAME}")
  # Without NAMESPACE the tool derives a valid one from the package directory's name.
  set(namespace_args "")
  if(ME_NAMESPACE)
    set(namespace_args --namespace "${ME_NAMESPACE}")
  endif()
  add_custom_command(
    OUTPUT "${ME_HEADER}"
    COMMAND "${MODELEXPORT_EXECUTABLE}" bindings "${dir}" --header "${ME_HEADER}" ${namespace_args}
    DEPENDS "${dir}/model.onnx" "${dir}/config.json" "${dir}/export_metadata.json"
    COMMENT "Generating ${ME_HEADER}"
    VERBATIM)
  add_custom_target(${NAME}_bindings DEPENDS "${ME_HEADER}")
endfunction()
