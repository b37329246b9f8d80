# mx_link_static_archives(TARGET...): every shared library reached from TARGET through imported
# targets' INTERFACE_LINK_LIBRARIES is linked from its static archive (libX.a beside libX.so),
# where Debian's -dev package ships one.
#
# Why: the gRPC stack (gRPC, protobuf, Abseil's ~60 libraries, c-ares, re2, upb) as shared
# libraries costs every process the relocations and symbol tables of all of it: ~4 MiB of
# resident pages, a sixth of the exporter's memory at 100 jobs (docs/performance.md). Linked
# from the archives, only what the exporter calls comes in and nothing is relocated by name.
# yaml-cpp the same (~0.3 MiB): it reads only the exporter's own config and kubeconfig files.
# Names in MX_KEEP_SHARED stay shared: OpenSSL and zlib get security fixes from Debian's updates
# without a rebuild, which a static copy would not.
set(MX_KEEP_SHARED ssl crypto z)
# The C and C++ runtimes (named bare in some link interfaces) are never taken from archives.
set(MX_RUNTIME_LIBS c m dl rt pthread atomic gcc gcc_s stdc++)

function(mx_link_static_archives)
  set(seen "")
  set(queue ${ARGN})
  while(queue)
    list(POP_FRONT queue target)
    # $<LINK_ONLY:x> and other generator expressions around a target name.
    string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" target "${target}")
    if(target IN_LIST seen OR NOT TARGET "${target}")
      continue()
    endif()
    list(APPEND seen "${target}")
    get_target_property(imported "${target}" IMPORTED)
    get_target_property(type "${target}" TYPE)
    if(NOT imported OR type STREQUAL "EXECUTABLE")
      continue()
    endif()
    if(NOT type STREQUAL "INTERFACE_LIBRARY")
      get_target_property(configs "${target}" IMPORTED_CONFIGURATIONS)
      set(properties IMPORTED_LOCATION)
      if(configs)
        foreach(config IN LISTS configs)
          list(APPEND properties IMPORTED_LOCATION_${config})
        endforeach()
      endif()
      foreach(property IN LISTS properties)
        get_target_property(location "${target}" ${property})
        if(NOT location MATCHES "^(.*)/lib([^/]+)\\.so(\\.[0-9.]+)?$")
          continue()
        endif()
        set(archive "${CMAKE_MATCH_1}/lib${CMAKE_MATCH_2}.a")
        if(CMAKE_MATCH_2 IN_LIST MX_KEEP_SHARED OR NOT EXISTS "${archive}")
          continue()
        endif()
        set_target_properties("${target}" PROPERTIES ${property} "${archive}")
      endforeach()
    endif()
    get_target_property(deps "${target}" INTERFACE_LINK_LIBRARIES)
    if(deps)
      # A library named bare or as -lNAME (gRPC names re2 so) becomes its archive's path.
      set(linked "")
      foreach(dep IN LISTS deps)
        if(dep MATCHES "^(-l)?([A-Za-z0-9_+][A-Za-z0-9_+.-]*)$" AND NOT TARGET "${dep}")
          set(name "${CMAKE_MATCH_2}")
          if(NOT name IN_LIST MX_KEEP_SHARED AND NOT name IN_LIST MX_RUNTIME_LIBS)
            unset(named_archive)
            find_library(named_archive NAMES lib${name}.a NO_CACHE)
            if(named_archive)
              set(dep "${named_archive}")
            endif()
          endif()
        endif()
        list(APPEND linked "${dep}")
      endforeach()
      set_target_properties("${target}" PROPERTIES INTERFACE_LINK_LIBRARIES "${linked}")
      list(APPEND queue ${deps})
    endif()
  endwhile()
endfunction()
