# The hooked munmap's code path (MMN_HOT, src/core/hidden.h) starts on a page
# boundary and holds the functions every hooked munmap runs; with
# -DLIMIT=4096 (optimised builds without a sanitizer) it must also fit in one
# page: after a munmap that freed pages, each page of code it touches costs a
# TLB miss.
# Arguments: -DLIB=a library or program linking libmmn, -DNM=nm, -DLIMIT=bytes
# (0: no size limit, for -O0 and instrumented builds).
execute_process(COMMAND ${NM} ${LIB} OUTPUT_VARIABLE syms RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} ${LIB} failed (${rc})")
endif()

function(symbol_address name out)
  string(REGEX MATCH "([0-9a-f]+) [tT] ${name}\n" m "${syms}")
  if(NOT m)
    message(FATAL_ERROR "${LIB}: no symbol ${name}")
  endif()
  math(EXPR v "0x${CMAKE_MATCH_1}")
  set(${out} ${v} PARENT_SCOPE)
endfunction()

symbol_address(mmn_hot_text_begin begin)
symbol_address(mmn_hot_text_end end)
math(EXPR size "${end} - ${begin}")
math(EXPR misalign "${begin} % 4096")
message(STATUS "hot text: ${size} bytes at ${begin}")
set(fail "")
if(NOT misalign EQUAL 0)
  list(APPEND fail "it starts ${misalign} bytes into a page")
endif()
if(LIMIT GREATER 0 AND size GREATER LIMIT)
  list(APPEND fail "${size} bytes, over ${LIMIT}")
endif()
foreach(fn mmn_invalidate_range_start mmn_invalidate_range_end mmn_itree_probe_miss
           vm_call_begin vm_call_end)
  symbol_address(${fn} at)
  if(at LESS begin OR NOT at LESS end)
    list(APPEND fail "${fn} lies outside it")
  endif()
endforeach()
if(fail)
  string(REPLACE ";" "; " fail "${fail}")
  message(FATAL_ERROR "${LIB}: the hot text: ${fail}")
endif()
