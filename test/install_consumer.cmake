# Installs the build into a scratch prefix, then builds and runs a program
# against the installed library the way a user would: through pkg-config.
# Arguments: -DBUILD_DIR=... -DSOURCE=... -DWORK=...; a cross build also passes
# -DCC=<its compiler> and -DEMULATOR="<command line that runs its programs>".
file(REMOVE_RECURSE ${WORK})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${WORK}/prefix
  RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install failed")
endif()
foreach(f include/mmn.h include/mmn/version.h lib/libmmn.so.0 lib/libmmn.a lib/pkgconfig/mmn.pc)
  if(NOT EXISTS ${WORK}/prefix/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
set(ENV{PKG_CONFIG_PATH} ${WORK}/prefix/lib/pkgconfig)
execute_process(COMMAND pkg-config --cflags --libs mmn OUTPUT_VARIABLE flags
  RESULT_VARIABLE rc OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config does not find mmn")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
if(NOT CC)
  set(CC cc)
endif()
separate_arguments(emulator UNIX_COMMAND "${EMULATOR}")
execute_process(COMMAND ${CC} -std=c11 -Wall -Werror ${SOURCE} ${flags} -pthread
  -Wl,-rpath,${WORK}/prefix/lib -o ${WORK}/consumer RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building against the installed library failed")
endif()
execute_process(COMMAND ${emulator} ${WORK}/consumer RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "consumer failed: ${out}")
endif()
message(STATUS "${out}")
