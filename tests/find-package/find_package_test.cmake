# The find-package test (run by ctest, as fmt's test/find-package-test): installs the built
# jetsource into a fresh prefix, then configures and builds the getting-started counter
# (docs/examples/counter, the files docs/getting-started.md shows) against it with
# find_package(jetsource), runs its tests and runs the program on an embedded nats-server.
# Nothing of jetsource is rebuilt: only the counter's own files are compiled.
#
#   cmake -DBUILD_DIR=<jetsource build> -DSOURCE_DIR=<consumer> -DWORK_DIR=<scratch>
#         [-DBUILD_TYPE=Debug] [-DCXX_COMPILER=...] [-DCOMPILER_LAUNCHER=ccache]
#         [-DCXX_FLAGS=...] [-DLINKER_FLAGS=...] -P find_package_test.cmake
# CXX_FLAGS / LINKER_FLAGS carry the sanitizer flags of a sanitizer build: its static libraries
# only link into programs built with the same -fsanitize flags.
cmake_minimum_required(VERSION 3.25)
foreach(var BUILD_DIR SOURCE_DIR WORK_DIR)
  if(NOT ${var})
    message(FATAL_ERROR "find_package_test: -D${var}=... is required")
  endif()
endforeach()

# Runs a command; stops the test with its output when it fails. Its stdout goes to `out_var`.
function(step name out_var)
  message(STATUS "find-package test: ${name}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err
                  TIMEOUT 500)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "find-package test: ${name} failed (${rc}):\n${out}\n${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK_DIR}/prefix)
set(build ${WORK_DIR}/build)
set(data ${WORK_DIR}/data)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

step("install into ${prefix}" out ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

set(configure ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${build} -DCMAKE_PREFIX_PATH=${prefix})
foreach(pair BUILD_TYPE:CMAKE_BUILD_TYPE CXX_COMPILER:CMAKE_CXX_COMPILER
             COMPILER_LAUNCHER:CMAKE_CXX_COMPILER_LAUNCHER CXX_FLAGS:CMAKE_CXX_FLAGS
             LINKER_FLAGS:CMAKE_EXE_LINKER_FLAGS)
  string(REPLACE ":" ";" pair "${pair}")
  list(GET pair 0 from)
  list(GET pair 1 to)
  if(${from})
    list(APPEND configure "-D${to}=${${from}}")
  endif()
endforeach()
step("configure the counter with find_package(jetsource)" out ${configure})
step("build the counter" out ${CMAKE_COMMAND} --build ${build} -j 2)

step("run counter_test" out ${build}/counter_test)
if(NOT out MATCHES "\\[  PASSED  \\] 3 tests")
  message(FATAL_ERROR "find-package test: counter_test did not pass its 3 tests:\n${out}")
endif()

# The program starts an embedded nats-server (a child it stops by PID, and that dies with it).
step("run counter" out ${build}/counter ${data})
message(STATUS "${out}")
if(NOT out MATCHES "c-1 is at version 1 \\(stream sequence 1\\)\nc-1 reads 5 in counter_totals\n")
  message(FATAL_ERROR "find-package test: unexpected output of counter:\n${out}")
endif()
# Its nats-server is gone with it: no process still runs on the test's data directory.
execute_process(COMMAND pgrep -f -- ${data}/nats OUTPUT_VARIABLE left OUTPUT_STRIP_TRAILING_WHITESPACE)
if(left)
  string(REPLACE "\n" ";" left "${left}")
  execute_process(COMMAND kill -9 ${left})
  message(FATAL_ERROR "find-package test: the counter left its nats-server running (pid ${left})")
endif()
