# Install rules of a wheel's tools, added to llama.cpp's top-level project by `python -m builder wheel`
# (-DCMAKE_PROJECT_llama.cpp_INCLUDE=<this file>): component `experts-first-wheel` installs the tools named in
# EXPERTS_FIRST_WHEEL_TOOLS and every shared library of the project they link, directly or not, into bin/ with
# RPATH $ORIGIN (CMAKE_INSTALL_RPATH). Upstream's own install rules are left alone; scikit-build-core installs
# only this component.

function(experts_first_shared_closure target out_var)
    # the project's shared libraries `target` links, followed through their link interfaces
    get_target_property(direct ${target} LINK_LIBRARIES)
    get_target_property(interface ${target} INTERFACE_LINK_LIBRARIES)
    set(found ${${out_var}})
    foreach(item IN LISTS direct interface)
        string(REGEX REPLACE "^\\$<LINK_ONLY:(.*)>$" "\\1" item "${item}")
        if(NOT TARGET "${item}")
            continue()
        endif()
        get_target_property(aliased "${item}" ALIASED_TARGET)
        if(aliased)
            set(item "${aliased}")
        endif()
        get_target_property(imported "${item}" IMPORTED)
        get_target_property(type "${item}" TYPE)
        if(imported OR NOT type MATCHES "^(SHARED|MODULE|STATIC|OBJECT|INTERFACE)_LIBRARY$" OR "${item}" IN_LIST found)
            continue()
        endif()
        if(type MATCHES "^(SHARED|MODULE)_LIBRARY$")
            list(APPEND found "${item}")
        endif()
        experts_first_shared_closure("${item}" found)
    endforeach()
    set(${out_var} ${found} PARENT_SCOPE)
endfunction()

function(experts_first_wheel_install)
    set(libraries)
    foreach(tool IN LISTS EXPERTS_FIRST_WHEEL_TOOLS)
        if(NOT TARGET "${tool}")
            message(FATAL_ERROR "experts-first wheel: no target ${tool} in this llama.cpp tree")
        endif()
        experts_first_shared_closure("${tool}" libraries)
    endforeach()
    message(STATUS "experts-first wheel: ${EXPERTS_FIRST_WHEEL_TOOLS} with ${libraries}")
    install(TARGETS ${EXPERTS_FIRST_WHEEL_TOOLS} RUNTIME DESTINATION bin COMPONENT experts-first-wheel)
    install(TARGETS ${libraries} LIBRARY DESTINATION bin NAMELINK_SKIP COMPONENT experts-first-wheel)
    # a wheel cannot hold symlinks (they would become copies): each library's file takes its soname's place
    install(CODE [[
        file(GLOB links LIST_DIRECTORIES false "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/bin/*.so*")
        foreach(link IN LISTS links)
            if(IS_SYMLINK "${link}")
                file(REAL_PATH "${link}" real)
                file(REMOVE "${link}")
                file(RENAME "${real}" "${link}")
            endif()
        endforeach()
    ]] COMPONENT experts-first-wheel)
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL experts_first_wheel_install)
