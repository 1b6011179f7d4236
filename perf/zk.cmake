# keelbench_zk: keelbench's ZooKeeper driver (drv_zk.c, bench_driver_zk) and its completion
# queue (zk_cq.c), over ZooKeeper's official multi-threaded C client, Debian's
# libzookeeper-mt-dev (no pkg-config file: header and library are looked up directly).
# THREADED selects the client's multi-threaded API (the synchronous calls drv_zk.c uses
# while opening, and the completion thread).
find_path(ZOOKEEPER_INCLUDE_DIR zookeeper/zookeeper.h)
find_library(ZOOKEEPER_MT_LIBRARY zookeeper_mt)
if(NOT ZOOKEEPER_INCLUDE_DIR OR NOT ZOOKEEPER_MT_LIBRARY)
  message(FATAL_ERROR "ZooKeeper's C client not found (for keelbench --system zookeeper): "
                      "install it with  apt-get install libzookeeper-mt-dev")
endif()
add_library(keelbench_zk STATIC ${CMAKE_CURRENT_LIST_DIR}/drv_zk.c ${CMAKE_CURRENT_LIST_DIR}/zk_cq.c)
target_include_directories(keelbench_zk SYSTEM PRIVATE ${ZOOKEEPER_INCLUDE_DIR})
target_compile_definitions(keelbench_zk PRIVATE THREADED)
target_link_libraries(keelbench_zk PUBLIC keel_core ${ZOOKEEPER_MT_LIBRARY} Threads::Threads)
