# etcd driver of keelbench (perf/drv_etcd.c): etcd v3's gRPC API over HTTP/2 with Debian's
# libnghttp2, the protobuf messages by hand (perf/etcd_pb.c). keelbench links keelbench_etcd.
pkg_check_modules(NGHTTP2 QUIET IMPORTED_TARGET libnghttp2)
if(NOT NGHTTP2_FOUND)
  message(FATAL_ERROR "libnghttp2 not found (for keelbench's etcd driver): install it with"
                      "  apt-get install libnghttp2-dev")
endif()
add_library(keelbench_etcd STATIC ${CMAKE_CURRENT_LIST_DIR}/etcd_pb.c
                                  ${CMAKE_CURRENT_LIST_DIR}/drv_etcd.c)
target_link_libraries(keelbench_etcd PUBLIC keel_core PkgConfig::NGHTTP2)
