# Installs the build into a scratch prefix, then builds and runs programs
# against the installed library the way a user would: through pkg-config.
# Arguments: -DBUILD_DIR=... -DSOURCE_DIR=... (the project) -DWORK=...
#
# Checks: include/ holds exactly the installed headers (one boundary); the
# man pages and mmn-bench are installed; test/install_consumer.c and
# examples/rcache.c build and run against the shared library, and the
# consumer also against the static one (pkg-config --static).
file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK}/prefix
  RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed")
endif()
set(P ${WORK}/prefix)
foreach(f include/mmn.h include/mmn/version.h include/mmn/process.h include/mmn/rcache.h
    lib/libmmn.so.0 lib/libmmn.a lib/libmmn-preload.so lib/pkgconfig/mmn.pc
    bin/mmn-bench share/man/man7/libmmn.7 share/man/man1/mmn-bench.1
    share/man/man8/libmmn-preload.so.8 share/man/man3/mmn_mm_new.3
    share/man/man3/mmn_rcache_get.3)
  if(NOT EXISTS ${P}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()

# include/ is the public boundary: everything in it is installed, and only it.
file(GLOB_RECURSE src_headers RELATIVE ${SOURCE_DIR}/include ${SOURCE_DIR}/include/*)
list(TRANSFORM src_headers REPLACE "\\.in$" "")
file(GLOB_RECURSE inst_headers RELATIVE ${P}/include ${P}/include/*)
list(SORT src_headers)
list(SORT inst_headers)
if(NOT src_headers STREQUAL inst_headers)
  message(FATAL_ERROR "include/ and the installed headers differ\n"
    " include/: ${src_headers}\n installed: ${inst_headers}")
endif()

set(ENV{PKG_CONFIG_PATH} ${P}/lib/pkgconfig)
execute_process(COMMAND pkg-config --cflags --libs mmn OUTPUT_VARIABLE flags
  RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config does not find mmn")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
execute_process(COMMAND pkg-config --static --cflags --libs mmn OUTPUT_VARIABLE sflags
  RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config --static does not find mmn")
endif()
separate_arguments(sflags UNIX_COMMAND "${sflags}")

# name, source, link flags...
function(build_and_run name src)
  execute_process(COMMAND cc -std=c11 -Wall -Werror ${src} ${ARGN}
    -o ${WORK}/${name} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: building against the installed library failed")
  endif()
  execute_process(COMMAND ${WORK}/${name} RESULT_VARIABLE rc OUTPUT_VARIABLE out
    ERROR_VARIABLE err)
  if(rc EQUAL 77)
    message(STATUS "${name}: built; not run here: ${err}")
  elseif(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name} failed (${rc}): ${out}${err}")
  else()
    message(STATUS "${name}: ${out}")
  endif()
endfunction()
build_and_run(consumer ${SOURCE_DIR}/test/install_consumer.c ${flags}
  -Wl,-rpath,${P}/lib)
# The static library by its path (-lmmn would pick the shared one).
list(REMOVE_ITEM sflags -lmmn)
build_and_run(consumer-static ${SOURCE_DIR}/test/install_consumer.c
  ${P}/lib/libmmn.a ${sflags})
build_and_run(rcache ${SOURCE_DIR}/examples/rcache.c ${flags} -Wl,-rpath,${P}/lib)
