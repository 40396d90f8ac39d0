# Vivado stand-in, part 4: block automation (PS preset), connection automation (axi4 rule) and
# assign_bd_address. The topology modelled is Vivado 2022's for Zynq: one axi_interconnect per PS
# master (<ps>_axi_periph) and one per PS slave port (axi_mem_intercon), one proc_sys_reset per
# clock (rst_<ps>_<MHz>M); clocks and resets already connected are kept.
proc ::tc::ip_cell {path} {
    set c [lindex [split [string trimleft $path /] /] 0]
    if {![info exists ::tc::cell($c)]} { ::tc::fail "no cell '$c' (cells: [join [lsort [array names ::tc::cell]] {, }])" }
    return $c
}

proc ::tc::ps_cell {} {
    foreach c [array names ::tc::cell] {
        if {[dict get $::tc::cell($c) kind] eq "ip" && [dict get $::tc::cell($c) ip] in {processing_system7 zynq_ultra_ps_e}} { return $c }
    }
    ::tc::fail "connection automation needs a processing system cell"
}

proc ::tc::new_ip {name ip} {
    set ::tc::cell($name) [dict create kind ip ip $ip vlnv xilinx.com:ip:$ip config [dict get $::tc::catalog $ip config] \
        user {} line [::tc::where] automation 1]
    return $name
}

proc ::tc::connect_if_free {driver pin} {
    if {![info exists ::tc::net($pin)]} { connect_bd_net $driver $pin }
}

proc ::tc::driver_of {pin} {
    if {![info exists ::tc::net($pin)]} { return "" }
    foreach p $::tc::members($::tc::net($pin)) {
        set i [::tc::pin_info $p]
        set ext [info exists ::tc::ext([string trimleft $p /])]
        # a cell's output drives its net; so does a design input port
        if {[dict get $i dir] eq ($ext ? "input" : "output")} { return $p }
    }
    return ""
}

# the clock and its reset block for automation: Clk "Auto" keeps an already connected clock
proc ::tc::auto_clock {clk_pin value} {
    set ps [::tc::ps_cell]
    set ip [dict get $::tc::catalog [dict get $::tc::cell($ps) ip]]
    if {$value ne "Auto"} {
        set src [::tc::lookup "apply_bd_automation Clk" pin $value 0]
    } elseif {$clk_pin ne "" && [::tc::driver_of $clk_pin] ne ""} {
        set src [::tc::driver_of $clk_pin]
    } else {
        set src /$ps/[dict get $ip clock_out]
        ::tc::lookup "apply_bd_automation (PS clock)" pin $src 0
    }
    set mhz [dict get $::tc::cell($ps) config [dict get $ip freq_param]]
    set rst rst_[dict get $ip prefix]_[expr {int($mhz)}]M
    if {![info exists ::tc::cell($rst)]} {
        ::tc::new_ip $rst proc_sys_reset
        connect_bd_net $src /$rst/slowest_sync_clk
        connect_bd_net /$ps/[dict get $ip reset_out] /$rst/ext_reset_in
    }
    return [list $src $rst]
}

proc ::tc::clock_pin {intf} {
    lassign [::tc::split_path interface $intf] c p
    set clk [dict get [::tc::interfaces $c] $p clock]
    return [expr {$clk eq "" ? "" : "/$c/$clk"}]
}
proc ::tc::reset_pin {intf} {
    lassign [::tc::split_path interface $intf] c p
    set r [dict get [::tc::interfaces $c] $p reset]
    return [expr {$r eq "" ? "" : "/$c/$r"}]
}

proc ::tc::grow_interconnect {ic side} {
    set key [expr {$side eq "S" ? "NUM_SI" : "NUM_MI"}]
    set n [dict get $::tc::cell($ic) config $key]
    # a fresh interconnect starts with no port of that side in use
    if {![dict exists $::tc::cell($ic) used$side]} { dict set ::tc::cell($ic) used$side 0 }
    set used [dict get $::tc::cell($ic) used$side]
    if {$used >= $n} { dict set ::tc::cell($ic) config $key [expr {$used + 1}] }
    dict set ::tc::cell($ic) used$side [expr {$used + 1}]
    return [format %s%02d $side $used]
}

proc ::tc::automate_axi4 {target cfg} {
    set ti [::tc::intf_info $target]
    if {[dict get $ti kind] ne "aximm"} { ::tc::fail "apply_bd_automation axi4: $target is [dict get $ti kind], not AXI memory-mapped" }
    set clkcfg [expr {[dict exists $cfg Clk] ? [dict get $cfg Clk] : "Auto"}]
    if {[dict exists $cfg Master]} {
        if {[dict get $ti mode] ne "slave"} { ::tc::fail "apply_bd_automation axi4 Master: $target is a master" }
        set m [::tc::lookup "apply_bd_automation Master" intf [dict get $cfg Master] 0]
        set ic [dict get $::tc::catalog [dict get $::tc::cell([::tc::ip_cell $m]) ip]]
        set ic [expr {[dict exists $ic prefix] ? "[dict get $ic prefix]_axi_periph" : "[::tc::ip_cell $m]_axi_periph"}]
        set fresh [expr {![info exists ::tc::cell($ic)]}]
        if {$fresh} { ::tc::new_ip $ic axi_interconnect; dict set ::tc::cell($ic) config NUM_MI 1 }
        lassign [::tc::auto_clock [::tc::clock_pin $target] $clkcfg] clk rst
        if {$fresh} {
            set s [::tc::grow_interconnect $ic S]
            connect_bd_intf_net $m /$ic/${s}_AXI
            ::tc::connect_if_free $clk [::tc::clock_pin $m]
            foreach p [list /$ic/ACLK /$ic/${s}_ACLK] { ::tc::connect_if_free $clk $p }
            ::tc::connect_if_free /$rst/interconnect_aresetn /$ic/ARESETN
            ::tc::connect_if_free /$rst/peripheral_aresetn /$ic/${s}_ARESETN
        }
        set mp [::tc::grow_interconnect $ic M]
        connect_bd_intf_net /$ic/${mp}_AXI $target
        ::tc::connect_if_free $clk /$ic/${mp}_ACLK
        ::tc::connect_if_free /$rst/peripheral_aresetn /$ic/${mp}_ARESETN
    } elseif {[dict exists $cfg Slave]} {
        if {[dict get $ti mode] ne "master"} { ::tc::fail "apply_bd_automation axi4 Slave: $target is a slave" }
        set sl [::tc::lookup "apply_bd_automation Slave" intf [dict get $cfg Slave] 0]
        set ic axi_mem_intercon
        if {[info exists ::tc::cell($ic)] && [dict get $::tc::cell($ic) slave] ne $sl} { set ic axi_mem_intercon_[llength [array names ::tc::cell axi_mem_intercon*]] }
        set fresh [expr {![info exists ::tc::cell($ic)]}]
        lassign [::tc::auto_clock [::tc::clock_pin $target] $clkcfg] clk rst
        if {$fresh} {
            ::tc::new_ip $ic axi_interconnect
            dict set ::tc::cell($ic) config NUM_MI 1
            dict set ::tc::cell($ic) slave $sl
            set mp [::tc::grow_interconnect $ic M]
            connect_bd_intf_net /$ic/${mp}_AXI $sl
            ::tc::connect_if_free $clk [::tc::clock_pin $sl]
            foreach p [list /$ic/ACLK /$ic/${mp}_ACLK] { ::tc::connect_if_free $clk $p }
            ::tc::connect_if_free /$rst/interconnect_aresetn /$ic/ARESETN
            ::tc::connect_if_free /$rst/peripheral_aresetn /$ic/${mp}_ARESETN
        }
        set s [::tc::grow_interconnect $ic S]
        connect_bd_intf_net $target /$ic/${s}_AXI
        ::tc::connect_if_free $clk /$ic/${s}_ACLK
        ::tc::connect_if_free /$rst/peripheral_aresetn /$ic/${s}_ARESETN
    } else {
        ::tc::fail "apply_bd_automation axi4: -config needs Master or Slave"
    }
    set tclk [::tc::clock_pin $target]
    if {$tclk ne ""} { ::tc::connect_if_free $clk $tclk }
    set trst [::tc::reset_pin $target]
    if {$trst ne ""} { ::tc::connect_if_free /$rst/peripheral_aresetn $trst }
}

proc apply_bd_automation {args} {
    lassign [::tc::opts apply_bd_automation {-rule 1 -config 1 -dict 1 -opts 1} $args] o pos
    ::tc::need_bd apply_bd_automation
    set rule [dict get $o -rule]
    set cfg [expr {[dict exists $o -config] ? [dict get $o -config] : {}}]
    if {[llength $cfg] % 2} { ::tc::fail "apply_bd_automation -config {$cfg}: not key value pairs" }
    set objs [concat {*}$pos]
    if {$objs eq {}} { ::tc::fail "apply_bd_automation $rule: no object" }
    switch -- $rule {
        xilinx.com:bd_rule:processing_system7 - xilinx.com:bd_rule:zynq_ultra_ps_e {
            set want [lindex [split $rule :] end]
            foreach obj $objs {
                set c [::tc::ip_cell $obj]
                if {[dict get $::tc::cell($c) ip] ne $want} { ::tc::fail "apply_bd_automation $rule on $obj, a [dict get $::tc::cell($c) ip]" }
                dict for {k v} $cfg {
                    if {$k ni {apply_board_preset make_external Master Slave}} { ::tc::fail "apply_bd_automation $rule: unknown -config key $k" }
                }
                if {[dict exists $cfg apply_board_preset] && [dict get $cfg apply_board_preset] eq "1"} {
                    if {[dict get $::tc::project board_part] eq ""} {
                        ::tc::fail "apply_board_preset without a board_part on the project: the PS would keep its IP defaults (DDR, MIO, clocks not the board's); set_property board_part ... \[current_project\] after create_project"
                    }
                    # the preset replaces the PS configuration: settings made before it are lost
                    if {[dict get $::tc::cell($c) user] ne {}} {
                        ::tc::fail "apply_board_preset on $c after its CONFIG was set ([join [dict keys [dict get $::tc::cell($c) user]] {, }]): the preset overwrites them - set them after the automation"
                    }
                }
                set ext [expr {[dict exists $cfg make_external] ? [dict get $cfg make_external] : "FIXED_IO, DDR"}]
                foreach i [dict get $::tc::catalog $want external] {
                    if {[string match *$i* $ext]} { make_bd_intf_pins_external -name $i /$c/$i }
                }
                ::tc::record block_automation rule $rule cell $c config $cfg
            }
        }
        xilinx.com:bd_rule:axi4 {
            dict for {k v} $cfg { if {$k ni {Master Slave Clk Clk_master Clk_slave Clk_xbar intc_ip master_apm ddr_seg}} { ::tc::fail "apply_bd_automation axi4: unknown -config key $k" } }
            foreach obj $objs { ::tc::automate_axi4 $obj $cfg }
            ::tc::record connection_automation rule axi4 objects $objs config $cfg
        }
        default { ::tc::fail "apply_bd_automation: rule $rule is not modelled" }
    }
    ::tc::changed
    return ""
}

# slaves reachable from a master interface, through interconnects
proc ::tc::reach {intf} {
    if {![info exists ::tc::inet($intf)]} { return {} }
    set peer $::tc::inet($intf)
    set c [lindex [split [string trimleft $peer /] /] 0]
    if {[info exists ::tc::cell($c)] && [dict get $::tc::cell($c) kind] eq "ip" && [dict get $::tc::cell($c) ip] in {axi_interconnect smartconnect}} {
        set out {}
        dict for {n i} [::tc::interfaces $c] {
            if {[dict get $i mode] eq "master"} { lappend out {*}[::tc::reach /$c/$n] }
        }
        return $out
    }
    return [list $peer]
}

proc ::tc::slave_range {slave} {
    lassign [::tc::split_path interface $slave] c p
    set cc $::tc::cell($c)
    if {[dict get $cc kind] eq "module"} {
        set bits [dict get [::tc::interfaces $c] $p addr_bits]
        return [expr {max(4096, 1 << $bits)}]
    }
    set ip [dict get $::tc::catalog [dict get $cc ip]]
    return [expr {[dict exists $ip register_range] ? [dict get $ip register_range] : 65536}]
}

proc assign_bd_address {args} {
    lassign [::tc::opts assign_bd_address {-target_address_space 1 -offset 1 -range 1 -export_to_file 1 -import_from_file 1 -force 0} $args] o pos
    ::tc::need_bd assign_bd_address
    set ::tc::segments {}
    foreach c [lsort [array names ::tc::cell]] {
        if {[dict get $::tc::cell($c) kind] ne "ip"} continue
        set ip [dict get $::tc::catalog [dict get $::tc::cell($c) ip]]
        dict for {n i} [::tc::interfaces $c] {
            if {[dict get $i kind] ne "aximm" || [dict get $i mode] ne "master" || [dict get $::tc::cell($c) ip] in {axi_interconnect smartconnect}} continue
            set next [expr {[dict exists $ip apertures $n] ? [lindex [dict get $ip apertures $n] 0] : 0}]
            foreach s [::tc::reach /$c/$n] {
                lassign [::tc::split_path interface $s] sc sp
                set sip [expr {[dict get $::tc::cell($sc) kind] eq "ip" ? [dict get $::tc::catalog [dict get $::tc::cell($sc) ip]] : {}}]
                if {[dict exists $sip memory $sp]} {
                    lassign [dict get $sip memory $sp] seg base range
                } else {
                    set range [::tc::slave_range $s]
                    set base [expr {($next + $range - 1) / $range * $range}]
                    set next [expr {$base + $range}]
                    set seg $sc/$sp/reg0
                    if {[dict exists $ip apertures $n]} {
                        lassign [dict get $ip apertures $n] lo size
                        if {$next > $lo + $size} { ::tc::fail "assign_bd_address: /$c/$n's aperture is full" }
                    }
                }
                lappend ::tc::segments [dict create master /$c/$n slave $s segment $seg offset $base range $range]
            }
        }
    }
    dict set ::tc::bd assigned 1
    return ""
}
