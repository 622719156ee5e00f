# FindONNX.cmake — meson.build's dependency('ONNX', method: 'cmake') reads ONNX through this.
#
# ONNX's CMake package links its targets to protobuf::libprotobuf without finding Protobuf
# itself, so Meson's CMake lookup warned "Dependency protobuf::libprotobuf for ONNX was not
# found" at every setup and left the link to the separate protobuf dependency. Finding Protobuf
# first defines that target; ONNX's own package then gives its targets and its configuration
# (ONNX_ML, ONNX_NAMESPACE) as before.
find_package(Protobuf QUIET)
find_package(ONNX CONFIG QUIET)
